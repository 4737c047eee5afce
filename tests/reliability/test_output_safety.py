"""Corpus: output collisions, path traversal, malformed datalists, prediction lookup, evaluation geometry, --overwrite.

A small converted data set (three CT cases) with predictions equal to the labels is built once; each case copies it,
breaks one thing the way a user (or an earlier run) could, runs the command line and classifies the outcome
(see ``corpus.py``). Inputs and earlier outputs are fingerprinted: nothing may change or vanish, and no file may
appear outside the output folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from scse_monai.apps.chaos.convert import convert_chaos

from .corpus import fingerprint, run_case
from .reliability_data import make_case_tree

CASES = ("ct_1", "ct_2", "ct_3")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("converted")
    for k, cid in enumerate(("1", "2", "3")):
        make_case_tree(base / "raw", n=4, case_id=cid, seed=k)
    report = convert_chaos(base / "raw", base / "data", folds=2, progress=False)
    assert not report.failed
    preds = base / "preds"
    preds.mkdir()
    for case in CASES:
        shutil.copyfile(base / "data" / "labelsTr" / f"{case}.nii.gz", preds / f"{case}_seg.nii.gz")
    return base


@pytest.fixture
def work(converted: Path, tmp_path: Path) -> Path:
    """A private copy of the converted data and predictions."""
    for name in ("data", "preds"):
        shutil.copytree(converted / name, tmp_path / name)
    return tmp_path


def _datalist(work: Path) -> Path:
    return work / "data" / "datalist.json"


def _edit_datalist(work: Path, edit) -> Path:
    path = _datalist(work)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def _pred(work: Path, case: str) -> Path:
    return work / "preds" / f"{case}_seg.nii.gz"


def _save_like(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(data, affine), path)


def _export(work: Path, out: Path, *extra: str) -> list:
    return ["export-submission", work / "preds", _datalist(work), out, "--section", "training", *extra]


# ---------------------------------------------------------------------------------------------------------------
# output collisions: an output that is, or is inside, an input


def test_evaluate_json_onto_the_ground_truth(work: Path, capsys) -> None:
    ground = work / "data" / "labelsTr" / "ct_1.nii.gz"
    run_case("output collisions", ["evaluate", "--ground", ground, "--pred", _pred(work, "ct_1"), "--json", ground],
             capsys, names=[str(ground), "--ground"], protect=[work / "data", work / "preds"])


def test_evaluate_csv_onto_the_prediction(work: Path, capsys) -> None:
    ground, pred = work / "data" / "labelsTr" / "ct_1.nii.gz", _pred(work, "ct_1")
    run_case("output collisions", ["evaluate", "--ground", ground, "--pred", pred, "--csv", pred], capsys,
             names=[str(pred), "--pred"], protect=[work / "data", work / "preds"])


def test_evaluate_batch_json_onto_a_listed_label(work: Path, capsys) -> None:
    label = work / "data" / "labelsTr" / "ct_2.nii.gz"
    run_case("output collisions", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds", "--json",
                                   label], capsys, names=[str(label), "label of ct_2"],
             protect=[work / "data", work / "preds"])


def test_evaluate_json_inside_the_prediction_folder(work: Path, capsys) -> None:
    out = work / "preds" / "scores.json"
    run_case("output collisions", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds", "--json", out],
             capsys, names=[str(out)], protect=[work / "data", work / "preds"])


def test_evaluate_json_and_csv_the_same_file(work: Path, capsys) -> None:
    out = work / "scores.txt"
    run_case("output collisions", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds", "--json", out,
                                   "--csv", out], capsys, names=[str(out)], protect=[work / "data", work / "preds"])


def test_evaluate_json_onto_the_datalist(work: Path, capsys) -> None:
    run_case("output collisions", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds", "--json",
                                   _datalist(work)], capsys, names=["datalist.json"], protect=[work / "data"])


def test_convert_into_its_own_root(work: Path, capsys, converted: Path) -> None:
    raw = work / "raw"
    shutil.copytree(converted / "raw", raw)
    run_case("output collisions", ["convert", raw, raw, "--quiet"], capsys, names=[str(raw), "CHAOS root"],
             protect=[raw])
    run_case("output collisions", ["convert", raw, raw / "Train_Sets" / "out", "--quiet"], capsys,
             names=["CHAOS set Train_Sets"], protect=[raw])
    run_case("output collisions", ["convert", raw / "Train_Sets", raw / "Train_Sets" / "CT" / "1", "--quiet"],
             capsys, names=["CHAOS set Train_Sets"], protect=[raw])


def test_export_into_the_prediction_folder(work: Path, capsys) -> None:
    run_case("output collisions", _export(work, work / "preds"), capsys, names=["PRED_DIR"],
             protect=[work / "data", work / "preds"])
    run_case("output collisions", _export(work, work / "preds" / "sub"), capsys, names=["PRED_DIR"],
             protect=[work / "data", work / "preds"])


def test_export_onto_the_datalist_file(work: Path, capsys) -> None:
    run_case("output collisions", _export(work, _datalist(work)), capsys, names=["DATALIST"],
             protect=[work / "data", work / "preds"])


def test_convert_output_is_an_existing_file(work: Path, capsys, converted: Path) -> None:
    target = work / "afile"
    target.write_text("keep me")
    run_case("output collisions", ["convert", converted / "raw", target, "--quiet"], capsys,
             names=[str(target), "not a folder"], protect=[target])


def test_evaluate_json_is_an_existing_folder(work: Path, capsys) -> None:
    folder = work / "results"
    (folder / "keep").mkdir(parents=True)
    run_case("output collisions", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds", "--json",
                                   folder], capsys, names=[str(folder), "existing folder"], protect=[work / "data"])


# ---------------------------------------------------------------------------------------------------------------
# path traversal through datalist names


@pytest.mark.parametrize("field,value", [("chaos_id", "../../escaped"), ("chaos_id", "/abs/escaped"),
                                         ("chaos_id", ".."), ("case", "../ct_1"), ("case", "ct_1/../../x"),
                                         ("chaos_id", "1\u0000x"), ("patient", "../p")])
def test_unsafe_names_in_the_datalist(work: Path, capsys, field: str, value: str) -> None:
    def edit(data):
        data["training"][0][field] = value

    _edit_datalist(work, edit)
    out = work / "sub" / "inner"
    for argv in (_export(work, out), ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds"]):
        run_case("traversal", argv, capsys, names=["datalist.json", "not a safe file name"],
                 protect=[work / "data", work / "preds"], sandbox=work.parent, allowed=[out])
    assert not (work / "escaped").exists() and not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# malformed datalists


MALFORMED = {
    "label_is_a_number": lambda d: d["training"][0].update(label=5),
    "training_is_a_number": lambda d: d.update(training=5),
    "entry_is_a_list": lambda d: d["training"].__setitem__(0, ["ct_1"]),
    "fold_is_text": lambda d: d["training"][0].update(fold="zero"),
    "image_is_empty": lambda d: d["training"][0].update(image=""),
    "case_listed_twice": lambda d: d["training"].append(dict(d["training"][0])),
    "test_is_an_object": lambda d: d.update(test={"a": 1}),
    "case_is_a_list": lambda d: d["training"][0].update(case=["ct_1"]),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_datalist(work: Path, capsys, name: str) -> None:
    _edit_datalist(work, MALFORMED[name])
    protect = [work / "data", work / "preds"]
    run_case("malformed datalists", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds"], capsys,
             names=["datalist.json"], protect=protect)
    run_case("malformed datalists", _export(work, work / "sub"), capsys, names=["datalist.json"], protect=protect)


@pytest.mark.parametrize("content", [b"[1, 2]", b"", b"\xff\xfe{", b'{"training": [{"label": "x"}]', b"null"])
def test_datalist_not_a_datalist(work: Path, capsys, content: bytes) -> None:
    _datalist(work).write_bytes(content)
    run_case("malformed datalists", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds"], capsys,
             names=["datalist.json"], protect=[work / "preds"])


def test_datalist_is_a_folder(work: Path, capsys) -> None:
    run_case("malformed datalists", ["evaluate", "--datalist", work / "data", "--pred", work / "preds"], capsys,
             names=[str(work / "data")], protect=[work / "data"])


# ---------------------------------------------------------------------------------------------------------------
# prediction lookup by exact case name


def test_prefix_named_prediction_is_not_taken(work: Path, capsys) -> None:
    """Cases ct_1 and ct_1_2: ct_1's missing prediction must not be replaced by ct_1_2's."""
    def edit(data):
        extra = dict(data["training"][1], case="ct_1_2", chaos_id="1_2")
        data["training"].append(extra)

    _edit_datalist(work, edit)
    shutil.copyfile(_pred(work, "ct_2"), _pred(work, "ct_1_2"))
    _pred(work, "ct_1").unlink()
    protect = [work / "data", work / "preds"]
    run_case("prediction lookup", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds"], capsys,
             names=["ct_1"], protect=protect)
    run_case("prediction lookup", _export(work, work / "sub"), capsys, names=["ct_1"], protect=protect)


def test_prefix_named_cases_each_get_their_own(work: Path, capsys) -> None:
    def edit(data):
        data["training"].append(dict(data["training"][1], case="ct_1_2", chaos_id="1_2"))

    _edit_datalist(work, edit)
    empty = np.zeros(nib.load(_pred(work, "ct_2")).shape, np.uint8)
    _save_like(_pred(work, "ct_1_2"), empty, nib.load(_pred(work, "ct_2")).affine)  # a wrong one for ct_1_2 only
    out = work / "scores.json"

    def check() -> bool:
        cases = json.loads(out.read_text())["cases"]
        return cases["ct_1"]["liver"]["dice"] == 1.0 and cases["ct_1_2"]["liver"]["dice"] == 0.0

    run_case("prediction lookup", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds", "--json",
                                   out], capsys, check=check, expect="correct result")


def test_two_files_for_one_case(work: Path, capsys) -> None:
    (work / "preds" / "ct_1").mkdir()
    shutil.copyfile(_pred(work, "ct_1"), work / "preds" / "ct_1" / "ct_1_seg.nii.gz")
    run_case("prediction lookup", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds"], capsys,
             names=["ambiguous prediction for case 'ct_1'"], protect=[work / "preds"])


# ---------------------------------------------------------------------------------------------------------------
# single-case evaluation in world geometry


def _flipped(work: Path, axis: int) -> Path:
    img = nib.load(_pred(work, "ct_1"))
    data = np.asarray(img.dataobj)
    flip = np.eye(4)
    flip[axis, axis], flip[axis, 3] = -1, data.shape[axis] - 1
    out = work / f"flipped{axis}.nii.gz"
    _save_like(out, np.flip(data, axis).copy(), img.affine @ flip)
    return out


@pytest.mark.parametrize("how", ["flip_x", "flip_z", "transpose_xy"])
def test_reoriented_prediction_with_matching_affine_scores_correctly(work: Path, capsys, how: str) -> None:
    ground = work / "data" / "labelsTr" / "ct_1.nii.gz"
    if how == "transpose_xy":
        img = nib.load(_pred(work, "ct_1"))
        swap = np.eye(4)[[1, 0, 2, 3]]
        pred = work / "transposed.nii.gz"
        _save_like(pred, np.asarray(img.dataobj).transpose(1, 0, 2).copy(), img.affine @ swap)
    else:
        pred = _flipped(work, 0 if how == "flip_x" else 2)
    out = work / "one.json"

    def check() -> bool:
        res = json.loads(out.read_text())
        return res["liver"]["dice"] == 1.0 and res["liver"]["assd"] == 0.0

    run_case("evaluation geometry", ["evaluate", "--ground", ground, "--pred", pred, "--json", out], capsys,
             check=check, expect="correct result", protect=[ground])
    shutil.copyfile(pred, _pred(work, "ct_1"))  # batch mode compares in world geometry too
    batch = work / "batch.json"
    run_case("evaluation geometry", ["evaluate", "--datalist", _datalist(work), "--pred", work / "preds", "--json",
                                     batch], capsys, expect="correct result",
             check=lambda: json.loads(batch.read_text())["cases"]["ct_1"]["liver"]["dice"] == 1.0)


@pytest.mark.parametrize("how", ["zero_row", "zero_column", "shifted_one_voxel", "mirrored_in_place", "nan_affine"])
def test_degenerate_or_other_geometry_is_refused(work: Path, capsys, how: str) -> None:
    ground = work / "data" / "labelsTr" / "ct_1.nii.gz"
    img = nib.load(_pred(work, "ct_1"))
    affine = img.affine.copy()
    target = work / "pred.nii.gz"
    if how == "zero_row":
        affine[1, :3] = 0
    elif how == "zero_column":
        affine[:3, 2] = 0
    elif how == "shifted_one_voxel":
        affine[:3, 3] += affine[:3, 0]
    elif how == "mirrored_in_place":
        affine = affine @ np.diag([-1.0, 1, 1, 1])
    elif how == "nan_affine":
        affine[0, 3] = np.nan
    data = np.asarray(img.dataobj)
    if how in ("zero_row", "zero_column", "nan_affine"):  # nibabel will not decompose it: store it as the sform only
        image = nib.Nifti1Image(data, None)
        image.header.set_sform(affine, code=1)
        image.header.set_qform(None, code=0)
    else:
        image = nib.Nifti1Image(data, affine)
    nib.save(image, target)
    assert np.array_equal(nib.load(target).affine, affine, equal_nan=True)
    run_case("evaluation geometry", ["evaluate", "--ground", ground, "--pred", target], capsys,
             names=["pred.nii.gz"], protect=[ground])


@pytest.mark.parametrize("spacing", [["nan", "nan", "nan"], ["1", "0", "1"], ["1", "-2", "1"], ["inf", "1", "1"]])
def test_evaluate_spacing_not_positive(work: Path, capsys, spacing: list[str]) -> None:
    ground = work / "data" / "labelsTr" / "ct_1.nii.gz"
    run_case("evaluation geometry", ["evaluate", "--ground", ground, "--pred", _pred(work, "ct_1"), "--spacing",
                                     *spacing], capsys, names=["--spacing"])


# ---------------------------------------------------------------------------------------------------------------
# --overwrite: everything checked and staged before anything is replaced


def _pngs(folder: Path) -> dict[str, str]:
    return fingerprint([folder])


@pytest.mark.parametrize("bad", ["value_7", "shifted_affine", "truncated", "missing"])
def test_overwrite_with_one_bad_case_keeps_every_earlier_submission(work: Path, capsys, bad: str) -> None:
    out = work / "sub"
    run_case("--overwrite", _export(work, out), capsys, expect="correct result",
             check=lambda: len(list(out.rglob("*.png"))) == 12)
    (out / "CT" / "1" / "Results" / "notes.txt").write_text("mine")
    target = _pred(work, "ct_3")  # the last case: earlier ones would have been replaced first
    img = nib.load(target)
    data = np.asarray(img.dataobj)
    if bad == "value_7":
        data = data.copy()
        data[0, 0, 0] = 7
        _save_like(target, data, img.affine)
    elif bad == "shifted_affine":
        shifted = img.affine.copy()
        shifted[:3, 3] += 5.0
        _save_like(target, data, shifted)
    elif bad == "truncated":
        target.write_bytes(target.read_bytes()[:60])
    else:
        target.unlink()
    run_case("--overwrite", _export(work, out, "--overwrite"), capsys, names=["ct_3"], protect=[out, work / "data"])
    assert not [p for p in out.rglob(".*")], "temporaries left in the submission"


def test_overwrite_replaces_case_by_case_and_keeps_user_files(work: Path, capsys) -> None:
    out = work / "sub"
    run_case("--overwrite", _export(work, out), capsys, expect="correct result",
             check=lambda: len(list(out.rglob("*.png"))) == 12)
    (out / "CT" / "2" / "Results" / "notes.txt").write_text("mine")
    (out / "CT" / "2" / "Results" / "img999.png").write_bytes(b"stale extra slice")
    img = nib.load(_pred(work, "ct_2"))
    _save_like(_pred(work, "ct_2"), np.zeros(img.shape, np.uint8), img.affine)

    def check() -> bool:
        folder = out / "CT" / "2" / "Results"
        names = sorted(p.name for p in folder.iterdir())
        return names == ["img000.png", "img001.png", "img002.png", "img003.png", "notes.txt"] and not [
            p for p in out.rglob(".*")]

    run_case("--overwrite", _export(work, out, "--overwrite"), capsys, expect="correct result", check=check)


def test_without_overwrite_existing_pngs_are_refused_before_any_work(work: Path, capsys) -> None:
    out = work / "sub"
    run_case("--overwrite", _export(work, out), capsys, expect="correct result",
             check=lambda: len(list(out.rglob("*.png"))) == 12)
    run_case("--overwrite", _export(work, out), capsys, names=["--overwrite", "Results"], protect=[out])
