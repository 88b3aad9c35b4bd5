"""The worst case at a modality's declared budget, as `wmbench verdict --format json` reports it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from wmbench.report.run import records_only
from wmbench.report.worst import settings_of, worst_case_json
from wmbench.store import Record

_keys = itertools.count()


def cell(attack: str, index: int, strength: Any, sample: str, marked: bool, p: float, **metrics: Any) -> Record:
    return Record(cell_key=f"w{next(_keys)}", sample=sample, modality="image", method="m", wm_key="k",
                  attack=attack, strength=strength, strength_index=index, marked=marked, p_value=p,
                  detected=p < 0.01, metrics=metrics)


def image_run(negatives_per_sample: int) -> list[Record]:
    """A mark that survives a flip (TPR 1), dies under a deep crop (kept 0.25) and half-dies under jpeg."""
    out = []
    for s in range(10):
        sample = f"img{s}"
        out.append(cell("none", 0, None, sample, True, 1e-9, psnr=42.0, kept=1.0))
        out.append(cell("flip", 0, "horizontal", sample, True, 1e-9, psnr=42.0, kept=1.0))
        out.append(cell("crop", 0, 0.5, sample, True, 0.5, psnr=41.0, kept=0.25))
        out.append(cell("jpeg", 0, 50, sample, True, 1e-9 if s % 2 else 0.5, psnr=33.0, kept=1.0))
        for attack, strength in (("none", None), ("flip", "horizontal"), ("crop", 0.5), ("jpeg", 50)):
            out += [cell(attack, 0, strength, f"{sample}-n{k}", False, (k + 0.5) / negatives_per_sample,
                         psnr=None, kept=1.0) for k in range(negatives_per_sample)]
    return out


def test_the_worst_case_at_the_budget_skips_what_breaks_another_declared_level() -> None:
    run = records_only(image_run(negatives_per_sample=2))
    (entry,) = worst_case_json(run)
    assert entry["metric"] == "psnr" and entry["budget"] == 30.0
    # the crop erases the mark but keeps a quarter of the content: outside the budget
    assert entry["worst"] == ["jpeg", 50] and entry["tpr"] == pytest.approx(0.5)
    assert entry["admitted"] == 3 and entry["resolvable"] is False  # 20 negatives cannot resolve 1 %
    crop = next(s for s in settings_of(run, "image", "m") if s.attack == "crop")
    assert crop.quality == float("-inf")


def test_enough_negatives_make_the_worst_case_resolvable() -> None:
    (entry,) = worst_case_json(records_only(image_run(negatives_per_sample=10)))  # 100 per setting
    assert entry["resolvable"] is True and entry["unresolved"] == 0
    low, high = entry["interval"]
    assert 0 <= low <= entry["tpr"] <= high <= 1
