"""Corpus, round 3: the output folders of ``demo``, ``ablate`` and ``bundle`` (one guard: scse_monai.utils.output_dir).

Each command may write only into a new or empty folder, or one it marked itself with the same settings; never into,
inside or around an input, never among the user's files. Every refusal must come before anything is written: the
folder and its neighbours are fingerprinted (nothing changed) and no file may appear in the sandbox.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scse_monai.apps.demo import DEFAULT_OUT, demo_settings
from scse_monai.bundle_paths import bundle_dir
from scse_monai.errors import InvalidInputError
from scse_monai.utils.output_dir import MARKER, check_output_dir, claim_output_dir, read_marker

from .corpus import fingerprint, record, run_case

CATEGORY = "output folders"


def _user_project(folder: Path) -> Path:
    """A user's project folder: their own data and report, as in the issue's ``cd project && demo --out .``."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "datalist.json").write_text(json.dumps({"training": [{"image": "mine.nii.gz"}]}))
    (folder / "report.md").write_text("# my report\n")
    return folder


def _marked(folder: Path, command: str, settings: dict) -> Path:
    claim_output_dir(folder, command, settings)
    (folder / "results.json").write_text('{"earlier": true}')
    return folder


def _quick_settings() -> dict:
    from dataclasses import asdict

    return asdict(demo_settings(quick=True))


# ---------------------------------------------------------------------------------------------------------------
# demo: every refusal before the phantom is written


def _demo_cases(tmp: Path) -> dict[str, tuple[list, list[str], Path]]:
    """name -> (argv after ``demo``, names the line must hold, folder that must stay as it is)."""
    project = _user_project(tmp / "project")
    quick = _marked(tmp / "quick_run", "demo", _quick_settings())
    seeds = _marked(tmp / "seeds_run", "demo", {**_quick_settings(), "seeds": [5]})
    ablation = _marked(tmp / "ablation_run", "ablate", {"dataset_dir": "x", "configs": [], "overrides": {}})
    (tmp / "a_file").write_text("not a folder")
    hidden = tmp / "hidden_only"
    hidden.mkdir()
    (hidden / ".DS_Store").write_bytes(b"\0\1")
    damaged = tmp / "damaged_marker"
    damaged.mkdir()
    (damaged / MARKER).write_text("{not json")
    foreign = tmp / "foreign_marker"
    foreign.mkdir()
    (foreign / MARKER).write_text('["a list"]')
    linked = tmp / "link_to_project"
    linked.symlink_to(project, target_is_directory=True)
    return {
        "cwd with the user's data and report": (["--quick", "--out", project], [str(project), "other files"], project),
        "full demo into a quick demo's folder": (["--out", quick], [str(quick), "other settings", "n_ct"], quick),
        "quick demo with other seeds": (["--quick", "--out", seeds], [str(seeds), "seeds"], seeds),
        "ablation output": (["--quick", "--out", ablation], [str(ablation), "scse-monai ablate"], ablation),
        "a file": (["--quick", "--out", tmp / "a_file"], [str(tmp / "a_file"), "not a folder"], tmp / "a_file"),
        "only a hidden file": (["--quick", "--out", hidden], [str(hidden), ".DS_Store"], hidden),
        "damaged marker": (["--quick", "--out", damaged], [MARKER, "unreadable"], damaged),
        "foreign marker": (["--quick", "--out", foreign], [MARKER, "not an output marker"], foreign),
        "symlink to the user's folder": (["--quick", "--out", linked], [str(linked), "other files"], project),
    }


DEMO_CASES = ["cwd with the user's data and report", "full demo into a quick demo's folder",
              "quick demo with other seeds", "ablation output", "a file", "only a hidden file", "damaged marker",
              "foreign marker", "symlink to the user's folder"]


@pytest.mark.parametrize("name", DEMO_CASES)
def test_demo_output_folder(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv, names, protect = _demo_cases(tmp_path)[name]
    run_case(CATEGORY, ["demo", *argv, "--quiet"], capsys, names=names, protect=[protect], sandbox=tmp_path)


def test_demo_out_dot_in_a_user_project(tmp_path: Path, capsys: pytest.CaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case, literally: ``cd project && scse-monai demo --quick --out .``."""
    project = _user_project(tmp_path / "project")
    monkeypatch.chdir(project)
    run_case(CATEGORY, ["demo", "--quick", "--out", ".", "--quiet"], capsys, names=["other files", "report.md"],
             protect=[project], sandbox=tmp_path)


@pytest.mark.parametrize("seeds", [["0", "4294967296"], ["-1"], ["3", "3"]])
def test_demo_seeds_out_of_range_or_repeated(seeds: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_case(CATEGORY, ["demo", "--quick", "--out", tmp_path / "o", "--seeds", *seeds, "--quiet"], capsys,
             names=["--seeds"], sandbox=tmp_path)


def test_quick_and_full_demo_default_to_different_folders() -> None:
    assert DEFAULT_OUT[True] != DEFAULT_OUT[False]
    record(CATEGORY, "correct result")


# ---------------------------------------------------------------------------------------------------------------
# ablate: the data set is an input; the design is valid, so the folder is what is refused


def _ablate_argv(data: Path, out: Path, *extra) -> list:
    return ["ablate", data, "--out", out, "--variants", "none", "sse", "--folds", "0", "--config", "demo_quick",
            "--quiet", *extra]


@pytest.mark.parametrize("where", ["the data set", "inside the data set", "around the data set", "user files",
                                   "demo output", "other overrides", "symlink into the data set"])
def test_ablate_output_folder(where: str, phantom_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "work" / "data"
    import shutil

    shutil.copytree(phantom_data, data)
    outs = {
        "the data set": (data, ["is the input DATA_DIR"]),
        "inside the data set": (data / "ablation", ["lies inside the input DATA_DIR"]),
        "around the data set": (tmp_path / "work", ["contains the input DATA_DIR"]),
        "user files": (_user_project(tmp_path / "project"), ["other files"]),
        "demo output": (_marked(tmp_path / "demo", "demo", _quick_settings()), ["scse-monai demo"]),
        "other overrides": (_marked(tmp_path / "abl", "ablate", {"dataset_dir": str(data.resolve()),
                                                                  "configs": ["demo_quick"],
                                                                  "overrides": {"epochs": 3}}),
                            ["other settings", "overrides"]),
    }
    if where == "symlink into the data set":
        link = tmp_path / "link"
        link.symlink_to(data, target_is_directory=True)
        outs[where] = (link, ["is the input DATA_DIR"])
    out, names = outs[where]
    before = fingerprint([tmp_path])
    run_case(CATEGORY, _ablate_argv(data, out), capsys, names=[str(out), *names], protect=[tmp_path],
             sandbox=tmp_path)
    assert fingerprint([tmp_path]) == before


# ---------------------------------------------------------------------------------------------------------------
# bundle DIR


def _bundle_case(name: str, tmp: Path) -> tuple[Path, list[str], Path | None]:
    """(DIR, names of the line -- empty for a correct result, the folder that must receive the copy)."""
    source = bundle_dir()
    empty = tmp / "empty"
    empty.mkdir()
    if name == "inside the bundle":
        return source / "configs" / "copy", ["lies inside the input bundle"], None
    if name == "the bundle itself":
        return source, ["is the input bundle"], None
    if name == "around the bundle":
        return source.parent, [str(source.parent)], None
    if name == "symlink into the bundle":
        (tmp / "link").symlink_to(source / "docs", target_is_directory=True)
        return tmp / "link", ["lies inside the input bundle"], None
    if name == "user files":
        return _user_project(tmp / "project"), ["other files"], None
    if name == "a file":
        (tmp / "f").write_text("x")
        return tmp / "f", ["not a folder"], None
    if name == "an earlier export":
        from scse_monai.bundle_paths import export_bundle

        export_bundle(tmp / "earlier")
        return tmp / "earlier", ["other files"], None
    if name == "symlink to an empty folder":
        (tmp / "link").symlink_to(empty, target_is_directory=True)
        return tmp / "link", [], empty
    if name == "dangling symlink":
        (tmp / "link").symlink_to(tmp / "made_here")
        return tmp / "link", [], tmp / "made_here"
    if name == "an empty folder":
        return empty, [], empty
    if name == "a new nested folder":
        return tmp / "a" / "b" / "bundle", [], tmp / "a" / "b" / "bundle"
    raise AssertionError(name)


BUNDLE_CASES = ["inside the bundle", "the bundle itself", "around the bundle", "symlink into the bundle", "user files",
                "a file", "an earlier export", "symlink to an empty folder", "dangling symlink", "an empty folder",
                "a new nested folder"]


@pytest.mark.parametrize("name", BUNDLE_CASES)
def test_bundle_dir(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dest, names, target = _bundle_case(name, tmp_path)
    source = bundle_dir()
    protect = [source, tmp_path] if target is None else [source]

    def copied() -> bool:
        """The copy equals a plain export into a new folder (whose content the bundle tests check)."""
        from scse_monai.bundle_paths import export_bundle

        reference = export_bundle(tmp_path / "reference")

        def tree(root: Path) -> dict[str, bytes]:
            return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

        link_kept = not dest.is_symlink() or dest.resolve() == target.resolve()
        return tree(target) == tree(reference) and "configs/train.json" in tree(target) and link_kept

    run_case(CATEGORY, ["bundle", dest], capsys, names=names, protect=protect,
             sandbox=source, expect="refused clearly" if names else "correct result",
             check=None if names else copied)


# ---------------------------------------------------------------------------------------------------------------
# the guard itself: what it accepts (the resume of an own folder), on the library level


def test_guard_accepts_new_empty_and_own_folders(tmp_path: Path) -> None:
    settings = {"a": [1, 2], "b": None}
    first = claim_output_dir(tmp_path / "new" / "deep", "demo", settings)
    assert read_marker(first) == {"command": "demo", "settings": settings}
    (first / "runs").mkdir()
    assert claim_output_dir(first, "demo", {"b": None, "a": (1, 2)}) == first  # tuples read back as lists
    assert (first / "runs").is_dir()
    with pytest.raises(InvalidInputError, match=r"other settings \(a: \[1, 2\] then, \[1, 3\] now\)"):
        check_output_dir(first, "demo", {"a": [1, 3], "b": None})
    with pytest.raises(InvalidInputError, match="earlier `scse-monai demo` output"):
        check_output_dir(first, "demo", settings, reuse=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_output_dir(empty, "ablate", {}) == empty.resolve()
    record(CATEGORY, "correct result")


def test_guard_refuses_an_input_in_any_direction(tmp_path: Path) -> None:
    data = tmp_path / "p" / "data"
    data.mkdir(parents=True)
    for out, phrase in ((data, "is the input"), (data / "x", "lies inside"), (tmp_path / "p", "contains the input")):
        with pytest.raises(InvalidInputError, match=phrase) as e:
            check_output_dir(out, "ablate", {}, inputs={"DATA_DIR": data})
        assert str(out) in str(e.value)
    assert sorted(os.listdir(tmp_path / "p")) == ["data"] and not os.listdir(data)
    record(CATEGORY, "refused clearly")
