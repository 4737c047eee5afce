"""The one guard for the output folders of ``demo``, ``ablate`` and ``bundle``: only a new, empty or own folder.

A command that writes many files into a folder must never mix them with the user's files, with an input, or with an
earlier run of other settings (a second ``demo`` would otherwise skip converted cases of another size as
"complete" and train on them). So :func:`claim_output_dir` accepts a folder only when it

- does not exist (it is created), or is empty; or
- holds the marker :data:`MARKER` that this guard wrote there for the same command and the same settings (a rerun
  resumes; runs of other settings are refused with the settings that differ),

and it is not, does not lie inside, and does not contain one of the command's inputs. The marker
(``{"command": ..., "settings": ...}``) is written before anything else, so an interrupted run's folder is still
recognised as its own. A symlink to a folder is followed (the files go to the folder it points to).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scse_monai.errors import InvalidInputError
from scse_monai.utils.io import atomic_write_text, check_output_path

__all__ = ["MARKER", "check_output_dir", "claim_output_dir", "read_marker", "write_marker"]

#: the file that marks a folder as written by a scse-monai command (hidden, at the top of the folder).
MARKER = ".scse_monai_output.json"


def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The marker of ``folder`` (``{"command", "settings"}``), or ``None`` when it has none.

    Raises:
        InvalidInputError: when the marker exists but is not a marker this guard wrote.
    """
    path = Path(folder) / MARKER
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():  # a FIFO would block the read
        raise InvalidInputError("output marker is not a regular file; remove the folder or choose another one", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInputError(f"unreadable output marker ({type(e).__name__}: {e}); remove the folder or choose "
                                "another one", path) from e
    if not isinstance(data, dict) or not isinstance(data.get("command"), str) or "settings" not in data:
        raise InvalidInputError("not an output marker of scse-monai; choose another folder", path)
    return data


def _canonical(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as JSON would give them back (tuples -> lists, paths -> strings), for comparison."""
    return json.loads(json.dumps(dict(settings), sort_keys=True, default=str))


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: {json.dumps(old.get(k))} then, {json.dumps(new.get(k))} now"
                     for k in keys if old.get(k) != new.get(k))


def check_output_dir(
    folder: str | os.PathLike,
    command: str,
    settings: Mapping[str, Any],
    inputs: Mapping[str, str | os.PathLike | None] | None = None,
    reuse: bool = True,
) -> tuple[Path, bool]:
    """Check that ``folder`` may receive ``command``'s output; nothing is written.

    Args:
        folder: the output folder (followed if it is a symlink).
        command: the command name of the marker (``"demo"``, ``"ablate"``, ``"bundle"``).
        settings: what determines the output (JSON-serialisable); a marked folder of other settings is refused.
        inputs: ``{"DATA_DIR": path, ...}``: what the command reads; the folder may be none of them, lie inside none
            and contain none.
        reuse: accept a folder this command marked earlier with the same settings (a rerun resumes); ``False``
            accepts only a new or empty folder.

    Returns:
        ``(resolved folder, whether it holds this command's marker with these settings)``.

    Raises:
        InvalidInputError: naming the folder and what is in the way (a file, other files, another command's or
            settings' output, an input).
    """
    given = Path(folder).expanduser()
    out = Path(os.path.abspath(given)).resolve()
    for label, src in (inputs or {}).items():
        if src is None:
            continue
        check_output_path(given, {label: src}, kind="folder")
        if out in Path(os.path.abspath(src)).resolve().parents:
            raise InvalidInputError(f"output folder contains the input {label} {src}; expected an output folder "
                                    "outside every input", given)
    if out.exists() and not out.is_dir():
        raise InvalidInputError("exists and is not a folder; expected a new or empty output folder", given)
    if not out.is_dir():
        return out, False
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as e:
        raise InvalidInputError(f"cannot read the output folder ({e.strerror or e})", given) from e
    if not entries:
        return out, False
    marker = read_marker(out) if MARKER in entries else None
    if marker is None:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise InvalidInputError(f"output folder holds other files ({shown}); expected a new or empty folder "
                                f"(scse-monai {command} never writes among files it did not create)", given)
    if marker["command"] != command:
        raise InvalidInputError(f"output folder holds the output of `scse-monai {marker['command']}`; choose "
                                f"another folder for `scse-monai {command}`", given)
    if not reuse:
        raise InvalidInputError(f"output folder holds an earlier `scse-monai {command}` output; expected a new or "
                                "empty folder (nothing is overwritten)", given)
    if marker["settings"] != _canonical(settings):
        raise InvalidInputError(
            f"output folder holds an earlier `scse-monai {command}` run with other settings "
            f"({_differences(marker['settings'], _canonical(settings))}); choose another folder, or delete this one "
            "to start over", given)
    return out, True


def write_marker(folder: str | os.PathLike, command: str, settings: Mapping[str, Any]) -> Path:
    """Write the marker of ``command`` and ``settings`` into the existing ``folder`` (atomically)."""
    path = Path(folder) / MARKER
    atomic_write_text(path, json.dumps({"command": command, "settings": _canonical(settings)}, indent=2,
                                       sort_keys=True) + "\n")
    return path


def claim_output_dir(
    folder: str | os.PathLike,
    command: str,
    settings: Mapping[str, Any],
    inputs: Mapping[str, str | os.PathLike | None] | None = None,
    reuse: bool = True,
) -> Path:
    """:func:`check_output_dir`, then create the folder if needed and mark it as ``command``'s (before any output).

    Returns:
        The resolved folder, holding the marker.

    Raises:
        InvalidInputError: see :func:`check_output_dir`.
    """
    out, marked = check_output_dir(folder, command, settings, inputs, reuse)
    if not marked:
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, command, settings)
    return out
