"""Output housekeeping, re-exported from the modules that hold it (the names many modules import from here).

- :mod:`scse_monai.utils.atomic`: atomic output files (temporary beside the target, then renamed);
- :mod:`scse_monai.utils.temporaries`: per-run temporaries and the clean-up of those a killed run left behind;
- :mod:`scse_monai.utils.lock`: one run per output folder;
- :mod:`scse_monai.utils.paths`: NIfTI/case names, names safe as a path component, outputs outside the inputs,
  regular-file inputs.
"""

from __future__ import annotations

from scse_monai.utils.atomic import (
    atomic_path,
    atomic_save_nifti,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    naming_errors,
)
from scse_monai.utils.lock import output_lock
from scse_monai.utils.paths import (
    NIFTI_SUFFIXES,
    case_name,
    check_output_path,
    check_regular_file,
    check_safe_name,
    nifti_stem,
)
from scse_monai.utils.temporaries import current_umask, make_staging_dir, pid_alive, remove_stale_temporaries

__all__ = [
    "NIFTI_SUFFIXES",
    "nifti_stem",
    "case_name",
    "check_safe_name",
    "check_output_path",
    "check_regular_file",
    "remove_stale_temporaries",
    "make_staging_dir",
    "output_lock",
    "pid_alive",
    "atomic_path",
    "naming_errors",
    "atomic_save_nifti",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "current_umask",
]
