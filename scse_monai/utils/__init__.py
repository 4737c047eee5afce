from .compile import backward_autocast_like_eager
from .io import atomic_path, atomic_save_nifti, atomic_torch_save, atomic_write_bytes, atomic_write_text

__all__ = [
    "atomic_path",
    "atomic_save_nifti",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "backward_autocast_like_eager",
]
