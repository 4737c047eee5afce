from .bundle_errors import surface_errors
from .compile import backward_autocast_like_eager
from .config_values import as_bool, as_optional, as_optional_bool
from .io import atomic_path, atomic_save_nifti, atomic_torch_save, atomic_write_bytes, atomic_write_text

__all__ = [
    "as_bool",
    "as_optional",
    "as_optional_bool",
    "surface_errors",
    "atomic_path",
    "atomic_save_nifti",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "backward_autocast_like_eager",
]
