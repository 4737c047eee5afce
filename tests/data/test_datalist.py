from __future__ import annotations

import json

import pytest

from scse_monai.data.datalist import datalist_entries, load_datalist
from scse_monai.errors import InvalidInputError


def _write(tmp_path, data) -> object:
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("data,message", [
    ([], "JSON object"),
    ({"training": 5}, "'training' is int; expected a list"),
    ({"training": [5]}, "entry 0 of 'training' is int"),
    ({"training": [{"label": 5}]}, "'label' is 5; expected a file path"),
    ({"test": [{"image": "a.nii.gz", "fold": "1"}]}, "'fold' is '1'; expected an integer"),
    ({"test": [{"image": "a.nii.gz", "chaos_id": "../../x"}]}, "not a safe file name"),
])
def test_load_datalist_refuses_malformed_structure(tmp_path, data, message) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        load_datalist(_write(tmp_path, data))
    assert str(tmp_path / "datalist.json") in str(info.value)


def test_entries_named_one_way(tmp_path) -> None:
    path = _write(tmp_path, {"training": [{"label": "labelsTr/ct_1.nii.gz", "image": "x.nii"}],
                             "test": [{"image": "imagesTs/ct_3.nii"}, {"image": "b.nii.gz", "case": "mr_4_t2spir"}]})
    assert [e["case"] for e in datalist_entries(path)] == ["ct_1", "ct_3", "mr_4_t2spir"]
    assert [e["case"] for e in datalist_entries(path, ("test",))] == ["ct_3", "mr_4_t2spir"]
    dup = _write(tmp_path, {"test": [{"image": "a/ct_3.nii"}, {"image": "b/ct_3.nii.gz"}]})
    with pytest.raises(InvalidInputError, match="'ct_3' is listed twice"):
        datalist_entries(dup)
