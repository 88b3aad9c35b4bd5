"""The worst case of each mark at its modality's declared quality budget, from a stored run.

This feeds ``wmbench verdict --format json`` (key ``worst_case``) with the statistics of
:mod:`wmbench.robustness`: per method, every (attack, strength) setting becomes a
:class:`~wmbench.robustness.Setting` (marked p-values with their samples, the attacked
unmarked p-values, the damage metric's mean), and the worst calibrated TPR at 1 % FPR
among the settings within the budget is reported with its bootstrap interval, the
attack that attains it and whether its FPR threshold could be resolved.

A setting is within the budget only if its damage metric is, *and* every other metric
with a declared acceptable level holds (an image crop that keeps a quarter of the
content is outside whatever its PSNR). The readings and the HTML card do not use this
yet: the verdict's sentences still come from :mod:`wmbench.report.verdict`.
"""

from __future__ import annotations

import math
from typing import Any

from wmbench.manifest import ModalityInfo
from wmbench.report.aggregate import failure, finite_mean
from wmbench.report.run import StoredRun
from wmbench.robustness import DEFAULT_TARGET_FPR, Setting, robustness_curve, worst_case
from wmbench.store import Record

BOOTSTRAP_DRAWS = 400  # enough for a stable 95 % percentile interval; a verdict stays within seconds


def settings_of(run: StoredRun, modality: str, method: str) -> list[Setting]:
    """One Setting per (attack, strength) of ``method``, the clean row first."""
    info = run.modality(modality)
    groups: dict[tuple[str, int], list[Record]] = {}
    for r in run.records:
        if r.modality == modality and r.method == method and failure(r) is None:
            groups.setdefault((r.attack, r.strength_index), []).append(r)
    out = []
    for (attack, _), cells in groups.items():
        marked = [r for r in cells if r.marked]
        if not marked:
            continue
        out.append(Setting(attack=attack, strength=cells[0].strength,
                           positives=[r.p_value for r in marked], positive_samples=[r.sample for r in marked],
                           negatives=[p for r in cells for p in r.negative_p_values], quality=_quality(info, marked)))
    return out


def _quality(info: ModalityInfo, marked: list[Record]) -> float | None:
    """The damage metric's mean; outside every budget (-inf / +inf) when another declared
    level fails; None when the damage metric was not measured (never within a budget)."""
    spec = info.metric(info.damage_metric)
    if spec is None:
        return None
    level = finite_mean(r.metric(spec.name) for r in marked)
    if level is None:
        return None
    for other in info.metrics:
        if other.name == spec.name or other.acceptable is None:
            continue
        value = finite_mean(r.metric(other.name) for r in marked)
        if value is None or not other.acceptable_at(value):
            return -math.inf if spec.higher_is_better else math.inf
    return level


def worst_case_json(run: StoredRun, target_fpr: float = DEFAULT_TARGET_FPR, seed: int = 0) -> list[dict[str, Any]]:
    """Per method of the run: the worst case at the declared budget, and the curve's area."""
    out = []
    for modality, method in dict.fromkeys((r.modality, r.method) for r in run.records):
        info = run.modality(modality)
        spec = info.metric(info.damage_metric)
        if spec is None or spec.acceptable is None:
            out.append({"method": method, "modality": modality, "reason": "the modality declares no budget"})
            continue
        settings = settings_of(run, modality, method)
        case = worst_case(settings, spec.acceptable, higher_is_better=spec.higher_is_better,
                          target_fpr=target_fpr, draws=BOOTSTRAP_DRAWS, seed=seed)
        curve = robustness_curve(settings, higher_is_better=spec.higher_is_better, target_fpr=target_fpr)
        point = case.point
        out.append({
            "method": method, "modality": modality, "metric": spec.name, "budget": spec.acceptable,
            "target_fpr": target_fpr,
            "tpr": None if point.tpr is None else point.tpr.value,
            "interval": None if point.tpr is None else [_finite(case.low), _finite(case.high)],
            "worst": None if point.worst is None else list(point.worst),
            "resolvable": point.resolvable, "admitted": len(point.admitted), "unresolved": len(point.unresolved),
            "samples": case.samples, "bootstrap_draws": case.draws,
            "area": curve.area, "unknown_quality": [list(k) for k in curve.unknown_quality],
        })
    return out


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value
