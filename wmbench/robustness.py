"""Worst-case robustness of one mark: the statistics behind a verdict the field would accept.

A mark is robust at a quality budget when *no* attack that keeps the attacked item
within that budget brings its detection down. So the number that matters is the
worst case, not an average over attacks: for each budget q, the lowest true-positive
rate, at a fixed false-positive rate, over every attack setting whose attacked items
are still good enough (quality >= q, or <= q for a metric where lower is better).
Read as a function of q, that is a robustness curve, and its normalised area one
summary number. The idea of scoring a mark by the strongest attack an attacker can
afford at each quality level, and of summarising it by an area under that curve, is
the "tamper-resistance" of Piet et al., "Mark My Words: Analyzing and Evaluating
Language Model Watermarks" (2023); this module applies it to any modality.

Three choices make the number hard to game:

* Each setting's detection threshold is calibrated on that setting's own *attacked
  unmarked* items, so an attack that also raises false positives is not rewarded.
  Too few negatives cannot resolve the target rate; the setting then falls back to
  the theoretical threshold (p < target) and says so.
* A setting whose quality was not measured is never within any budget: an unknown
  cost cannot be called cheap.
* Two marks are ranked only when seeded bootstrap intervals of their worst cases do
  not overlap; otherwise the answer is "not separable at n = ...".

Pure library code: no report or HTML. ``wmbench.stats`` holds the rates, intervals
and the threshold rule this module reuses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from wmbench.stats import Rate, empirical_threshold, min_negatives, rate, tpr_at_fpr

DEFAULT_TARGET_FPR = 0.01  # the verdict's scale: detection at a 1 % false-positive rate

Key = tuple[str, Any]  # (attack, strength): names a setting in results


@dataclass(frozen=True)
class Setting:
    """One attack at one strength against one mark, pooled over samples and keys.

    ``positives`` are the p-values of the attacked marked items and
    ``positive_samples`` the sample id of each (several keys give several positives
    per sample; the bootstrap resamples samples, not items, because items of one
    sample are not independent). ``negatives`` are the p-values of the *attacked
    unmarked* items under every key: the false positives this attack causes.
    ``quality`` is the mean of the modality's damage metric on the attacked marked
    items; None (or NaN) means not measured, which never counts as within a budget.
    The clean row is the setting with attack "none" and the best quality.
    """

    attack: str
    strength: Any
    positives: Sequence[float]
    positive_samples: Sequence[str]
    negatives: Sequence[float]
    quality: float | None = None

    def __post_init__(self) -> None:
        positives = tuple(float(p) for p in self.positives)
        samples = tuple(str(s) for s in self.positive_samples)
        negatives = tuple(float(p) for p in self.negatives)
        if len(samples) != len(positives):
            raise ValueError(f"{self.attack} {self.strength!r}: {len(positives)} positives but "
                             f"{len(samples)} sample ids; give one sample id per positive")
        if not positives:
            raise ValueError(f"{self.attack} {self.strength!r}: no attacked marked item, so no rate to measure")
        if not all(0.0 <= p <= 1.0 for p in (*positives, *negatives)):  # NaN fails too
            raise ValueError(f"{self.attack} {self.strength!r}: p-values must lie in [0, 1]")
        quality = None if self.quality is None or math.isnan(self.quality) else float(self.quality)
        object.__setattr__(self, "positives", positives)
        object.__setattr__(self, "positive_samples", samples)
        object.__setattr__(self, "negatives", negatives)
        object.__setattr__(self, "quality", quality)

    @property
    def key(self) -> Key:
        return (self.attack, self.strength)

    def within(self, budget: float, higher_is_better: bool = True) -> bool:
        """Is the attacked item still good enough at this budget? Never when quality is unknown."""
        if self.quality is None:
            return False
        return self.quality >= budget if higher_is_better else self.quality <= budget


@dataclass(frozen=True)
class Calibrated:
    """One setting's TPR at the target FPR, thresholded on its own attacked negatives.

    ``threshold``: "detected" means p < threshold. When ``resolvable`` it is the
    empirical threshold of ``wmbench.stats.empirical_threshold``: the largest t with
    at most floor(target * n) negatives strictly below it (ties at t are not false
    positives, so the measured ``fpr`` never exceeds the target). It is resolvable
    only with at least ceil(1 / target) negatives; with fewer the threshold is the
    theoretical ``target`` itself and ``resolvable`` is False, a flag to carry into
    any verdict. Note that the measured FPR is in-sample: on fresh negatives the
    empirical threshold's expected FPR is (floor(target * n) + 1) / (n + 1).
    """

    key: Key
    target_fpr: float
    tpr: Rate  # Wilson interval
    threshold: float
    fpr: Rate  # the setting's negatives below the threshold
    resolvable: bool


def calibrate(setting: Setting, target_fpr: float = DEFAULT_TARGET_FPR) -> Calibrated:
    """The setting's TPR at ``target_fpr``, empirical threshold if resolvable, else p < target."""
    op = tpr_at_fpr(setting.positives, setting.negatives, target_fpr)
    if op.resolvable and op.empirical is not None and op.empirical_threshold is not None:
        tpr, threshold = op.empirical, op.empirical_threshold
    else:
        tpr, threshold = op.theory, target_fpr
    false = sum(p < threshold for p in setting.negatives)
    return Calibrated(key=setting.key, target_fpr=target_fpr, tpr=tpr, threshold=threshold,
                      fpr=rate(false, len(setting.negatives)), resolvable=op.resolvable)


# -- the worst-case curve ---------------------------------------------------------------

@dataclass(frozen=True)
class CurvePoint:
    """The worst case at one quality budget.

    ``tpr`` is the lowest calibrated TPR among the ``admitted`` settings (those with
    known quality within the budget) and ``worst`` the setting that attains it (the
    first in input order on a tie); both None when no setting is admitted.
    ``unresolved`` lists admitted settings whose FPR threshold could not be resolved:
    their fallback TPR may hide a lower one, so the point is then not ``resolvable``.
    """

    budget: float
    tpr: Rate | None
    worst: Key | None
    admitted: tuple[Key, ...]
    unresolved: tuple[Key, ...]

    @property
    def value(self) -> float:
        return self.tpr.value if self.tpr is not None else float("nan")

    @property
    def resolvable(self) -> bool:
        return bool(self.admitted) and not self.unresolved


@dataclass(frozen=True)
class RobustnessCurve:
    """A mark's worst-case TPR against the quality budget, strictest budget first.

    Loosening the budget admits more settings, so along ``points`` the TPR never
    rises. ``area`` is the area under the worst-case step function over the budget
    range divided by the range's width, in [0, 1] (1: detected every time whatever
    the attacker may spend within the range). It is exact, not a trapezoid over the
    grid, so it does not depend on how fine the grid is; None when some part of the
    range admits no setting (a budget stricter than the clean row's quality).
    """

    target_fpr: float
    higher_is_better: bool
    points: tuple[CurvePoint, ...]
    area: float | None
    calibrated: tuple[Calibrated, ...]  # one per setting, in input order
    unknown_quality: tuple[Key, ...]  # never within any budget

    def at(self, budget: float) -> CurvePoint:
        for point in self.points:
            if point.budget == budget:
                return point
        raise KeyError(f"budget {budget!r} is not on the curve's grid")

    @property
    def worst_attacks(self) -> dict[float, Key | None]:
        """The worst (attack, strength) at each declared budget."""
        return {point.budget: point.worst for point in self.points}


def _point(pairs: Sequence[tuple[Setting, Calibrated]], budget: float, higher_is_better: bool) -> CurvePoint:
    admitted = [(s, c) for s, c in pairs if s.within(budget, higher_is_better)]
    worst = min(admitted, key=lambda sc: sc[1].tpr.value, default=None)  # min keeps the first tie
    return CurvePoint(budget=budget, tpr=worst[1].tpr if worst else None, worst=worst[0].key if worst else None,
                      admitted=tuple(s.key for s, _ in admitted),
                      unresolved=tuple(s.key for s, c in admitted if not c.resolvable))


def _area(pairs: Sequence[tuple[Setting, Calibrated]], budgets: Sequence[float],
          higher_is_better: bool) -> float | None:
    lo, hi = min(budgets), max(budgets)
    if lo == hi:  # a range of width zero: the limit of the normalised area is the value there
        value = _point(pairs, lo, higher_is_better).value
        return None if math.isnan(value) else value
    # The admitted set only changes at setting qualities, so the worst case is constant
    # between consecutive breakpoints and one evaluation at each midpoint is exact.
    cuts = sorted({lo, hi, *(s.quality for s, _ in pairs if s.quality is not None and lo < s.quality < hi)})
    total = 0.0
    for a, b in zip(cuts, cuts[1:]):
        value = _point(pairs, (a + b) / 2, higher_is_better).value
        if math.isnan(value):
            return None
        total += (b - a) * value
    return total / (hi - lo)


def robustness_curve(settings: Sequence[Setting], budgets: Sequence[float] | None = None, *,
                     higher_is_better: bool = True,
                     target_fpr: float = DEFAULT_TARGET_FPR) -> RobustnessCurve:
    """The worst-case curve of one mark over ``budgets`` (default: the settings' known qualities).

    ``higher_is_better`` is the damage metric's direction (``MetricSpec.higher_is_better``).
    """
    pairs = [(s, calibrate(s, target_fpr)) for s in settings]
    if budgets is None:
        budgets = sorted({s.quality for s in settings if s.quality is not None and math.isfinite(s.quality)})
    grid = sorted({float(b) for b in budgets}, reverse=higher_is_better)  # strictest first
    if any(math.isnan(b) for b in grid):
        raise ValueError("a quality budget cannot be NaN")
    return RobustnessCurve(
        target_fpr=target_fpr, higher_is_better=higher_is_better,
        points=tuple(_point(pairs, b, higher_is_better) for b in grid),
        area=_area(pairs, grid, higher_is_better) if grid else None,
        calibrated=tuple(c for _, c in pairs),
        unknown_quality=tuple(s.key for s in settings if s.quality is None),
    )


# -- bootstrap and comparison -----------------------------------------------------------

@dataclass(frozen=True)
class WorstCase:
    """The worst-case TPR at one budget with a seeded bootstrap interval over samples.

    Each draw resamples the sample ids of the admitted settings' positives with
    replacement, once for all settings, so an attack that fails on the same hard
    samples as another stays correlated with it, as the minimum needs; each
    setting's negatives are resampled with replacement too (their number, hence
    resolvability, is unchanged) and its threshold recalibrated on the draw. The
    interval is the percentile interval of the draws' minima; NaN without draws or
    without an admitted setting. ``samples``: distinct sample ids among the positives.
    """

    point: CurvePoint
    low: float
    high: float
    samples: int
    draws: int
    seed: int
    confidence: float


def worst_case(settings: Sequence[Setting], budget: float, *, higher_is_better: bool = True,
               target_fpr: float = DEFAULT_TARGET_FPR, draws: int = 1000, seed: int = 0,
               confidence: float = 0.95) -> WorstCase:
    """The worst case at ``budget`` and its bootstrap interval; deterministic given ``seed``."""
    pairs = [(s, calibrate(s, target_fpr)) for s in settings]
    point = _point(pairs, budget, higher_is_better)
    admitted = [(s, c) for s, c in pairs if s.within(budget, higher_is_better)]
    ids = sorted({sid for s, _ in admitted for sid in s.positive_samples})
    low = high = float("nan")
    if admitted and draws > 0:
        index = {sid: i for i, sid in enumerate(ids)}
        prepared = [(np.array([index[sid] for sid in s.positive_samples]), np.asarray(s.positives),
                     np.asarray(s.negatives), c.resolvable) for s, c in admitted]
        rng = np.random.default_rng(seed)
        minima = np.full(draws, np.nan)
        for d in range(draws):
            counts = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
            rates = []
            for where, pos, neg, resolvable in prepared:
                weights = counts[where]
                if not weights.sum():
                    continue  # none of this setting's samples drawn: it says nothing this time
                threshold = (empirical_threshold(np.sort(rng.choice(neg, len(neg))), target_fpr)
                             if resolvable else target_fpr)
                rates.append(weights[pos < threshold].sum() / weights.sum())
            if rates:
                minima[d] = min(rates)
        tail = (1 - confidence) / 2
        low, high = (float(q) for q in np.nanquantile(minima, [tail, 1 - tail]))
    return WorstCase(point=point, low=low, high=high, samples=len(ids), draws=draws, seed=seed,
                     confidence=confidence)


Outcome = Literal["a", "b", "not separable", "inconclusive"]


@dataclass(frozen=True)
class Comparison:
    """Which of two marks is more robust at one budget, and how sure.

    ``outcome`` "a" or "b" only when the bootstrap intervals of the worst-case TPRs
    separate (a conservative test: non-overlapping 95 % intervals); "not separable"
    when they overlap, with ``n`` the smaller number of samples, since more samples
    is what would separate them; "inconclusive" when either side has no setting
    within the budget or an unresolvable FPR threshold there (``reason`` says which).
    """

    budget: float
    outcome: Outcome
    text: str
    a: WorstCase
    b: WorstCase
    n: int
    reason: str | None = None


def _unusable(name: str, case: WorstCase, budget: float, target_fpr: float) -> str | None:
    point = case.point
    if not point.admitted:
        return f"{name}: no setting with known quality within budget {budget:g}"
    if point.unresolved:
        shown = ", ".join(f"{attack} {strength!r}" for attack, strength in point.unresolved)
        return (f"{name}: FPR threshold not resolvable at budget {budget:g} (fewer than "
                f"{min_negatives(target_fpr)} negatives: {shown})")
    return None


def compare(a: Sequence[Setting], b: Sequence[Setting], budget: float, *, higher_is_better: bool = True,
            target_fpr: float = DEFAULT_TARGET_FPR, names: tuple[str, str] = ("a", "b"), draws: int = 1000,
            seed: int = 0, confidence: float = 0.95) -> Comparison:
    """Compare the worst cases of marks ``a`` and ``b`` at ``budget``.

    Both sides are bootstrapped with the same ``seed``, so swapping the arguments
    mirrors the answer exactly. Deterministic given the seed.
    """
    def case(settings: Sequence[Setting], draws: int) -> WorstCase:
        return worst_case(settings, budget, higher_is_better=higher_is_better, target_fpr=target_fpr,
                          draws=draws, seed=seed, confidence=confidence)

    first = case(a, 0), case(b, 0)  # the points alone: is there anything to compare?
    reasons = [r for r in (_unusable(names[0], first[0], budget, target_fpr),
                           _unusable(names[1], first[1], budget, target_fpr)) if r]
    n = min(first[0].samples, first[1].samples)
    if reasons:
        reason = "; ".join(reasons)
        return Comparison(budget, "inconclusive", f"inconclusive: {reason}", first[0], first[1], n, reason)
    ca, cb = case(a, draws), case(b, draws)
    if ca.low > cb.high:
        return Comparison(budget, "a", f"{names[0]} more robust than {names[1]}", ca, cb, n)
    if cb.low > ca.high:
        return Comparison(budget, "b", f"{names[1]} more robust than {names[0]}", ca, cb, n)
    return Comparison(budget, "not separable", f"not separable at n = {n}", ca, cb, n)
