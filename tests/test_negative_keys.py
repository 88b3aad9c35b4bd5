"""Negatives under many keys: every unmarked cell also scored under a method's other keys,
so that a low false-positive rate is measurable (n = cells x (keys + 1))."""

from __future__ import annotations

import json

import numpy as np
import pytest
from testkit import assert_one_line_error, copy_photos, read_cells

from wmbench import registry
from wmbench.execute import negative_keys
from wmbench.modalities.image.io import load_image
from wmbench.types import MultiKeyScoring


@pytest.mark.parametrize("method", ["dwtDct", "dwtDctSvd"])
def test_one_decode_scores_every_key_as_detect_would(method: str, astronaut: np.ndarray) -> None:
    mark = registry.method_instance(method)
    assert isinstance(mark, MultiKeyScoring)
    keys = negative_keys("k1", 12)
    assert len(set(keys)) == 12 and "k1" not in keys
    marked = mark.embed(astronaut, "k1")
    for item in (astronaut, marked):
        assert [d.p_value for d in mark.detect_keys(item, keys)] == [mark.detect(item, k).p_value for k in keys]


@pytest.mark.parametrize("value, needle", [(-1, "between 0 and 10000"), (10_001, "between 0 and 10000"),
                                           ('"many"', "negative_keys: expected an integer")])
def test_a_bad_negative_keys_is_one_line(value: object, needle: str, tmp_path, cli) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text(f'[samples]\nimages = ["builtin:images"]\n[[methods]]\nname = "dwtDct"\nnegative_keys = {value}\n',
                     encoding="utf-8")
    code, _, err = cli("run", suite, "--out", tmp_path / "run", "--no-progress")
    assert_one_line_error(code, err, "methods[0].negative_keys", needle)


@pytest.mark.slow
def test_negatives_under_many_keys_make_1_percent_resolvable(tmp_path, cli) -> None:
    copy_photos(tmp_path / "imgs", ["coffee.png", "chelsea.png"])
    suite = tmp_path / "s.toml"
    suite.write_text('[suite]\nseed = 3\n[samples]\nimages = ["imgs"]\n'
                     '[[methods]]\nname = "dwtDctSvd"\nkey = "k1"\nnegative_keys = 60\n'
                     '[[attacks]]\nname = "jpeg"\nstrengths = [90]\n', encoding="utf-8")
    code, _, err = cli("run", suite, "--out", tmp_path / "run", "--workers", "1", "--no-progress")
    assert code == 0, err
    cells = list(read_cells(tmp_path / "run").values())
    unmarked = [c for c in cells if not c["marked"]]
    assert unmarked and all(len(json.loads(c["other_keys"])) == 60 for c in unmarked)
    assert all(c["other_keys"] is None for c in cells if c["marked"])
    code, out, err = cli("verdict", tmp_path / "run", "--format", "json")
    assert code == 0, err
    method = json.loads(out)["modalities"][0]["methods"][0]
    assert method["fpr_measured"]["n"] == 2 * 61 and method["threshold_resolvable"] is True
    photo = load_image(str(tmp_path / "imgs" / "coffee.png"))
    mark = registry.method_instance("dwtDctSvd")
    stored = next(c for c in unmarked if c["sample"] == "coffee.png" and c["attack"] == "none")
    assert json.loads(stored["other_keys"]) == [d.p_value for d in mark.detect_keys(photo, negative_keys("k1", 60))]
