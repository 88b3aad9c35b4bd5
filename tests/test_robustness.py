"""wmbench.robustness: the worst-case curve, the calibrated threshold, the bootstrap comparison.

Property tests (hypothesis) pin the algebra of a worst case: it is a minimum over the
settings within a budget, so it only falls as the budget loosens, settings outside a
budget never move it, and a setting of unknown quality never counts. The threshold
tests pin the FPR promise on seeded uniform (honest) negatives; the comparison tests
pin the three answers and their symmetry.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from wmbench.robustness import (
    Setting,
    calibrate,
    compare,
    robustness_curve,
    worst_case,
)
from wmbench.stats import empirical_threshold, min_negatives, tpr_at_fpr

# 400 evenly spread negatives: resolvable at 1 % (needs 100); threshold = 5th smallest = 0.01125.
NEG = tuple((i + 0.5) / 400 for i in range(400))
HIT, MISS = 1e-6, 0.9  # a positive below every threshold, one above


def make(attack: str, strength: object, detected: int, n: int, quality: float | None,
         negatives: tuple[float, ...] = NEG, keys: int = 1) -> Setting:
    """``detected`` of ``n`` samples detected (under each of ``keys`` keys)."""
    pos = [HIT] * detected + [MISS] * (n - detected)
    return Setting(attack, strength, positives=pos * keys, positive_samples=[f"s{i}" for i in range(n)] * keys,
                   negatives=negatives, quality=quality)


@st.composite
def a_setting(draw: st.DrawFn, name: str | None = None) -> Setting:
    n = draw(st.integers(1, 12))
    quality = draw(st.one_of(st.none(), st.integers(0, 40).map(float)))
    return make(name or draw(st.sampled_from(["jpeg", "blur", "crop", "noise"])), draw(st.integers(0, 9)),
                draw(st.integers(0, n)), n, quality)


SETTINGS = st.lists(a_setting(), min_size=0, max_size=6)
BUDGETS = st.lists(st.integers(-5, 45).map(float), min_size=1, max_size=6)
DIRECTION = st.booleans()
FAST = settings(max_examples=80, deadline=None, database=None)


def tpr(s: Setting) -> float:
    return calibrate(s).tpr.value


# -- the worst case is a minimum --------------------------------------------------------

@FAST
@given(SETTINGS, BUDGETS, DIRECTION)
def test_each_point_is_the_minimum_over_the_settings_within_budget(ss: list[Setting], budgets: list[float],
                                                                   hib: bool) -> None:
    curve = robustness_curve(ss, budgets, higher_is_better=hib)
    for point in curve.points:
        within = [s for s in ss if s.within(point.budget, hib)]
        assert point.admitted == tuple(s.key for s in within)
        if within:
            assert point.value == min(tpr(s) for s in within)
            assert point.worst == next(s.key for s in within if tpr(s) == point.value)  # first on a tie
        else:
            assert point.tpr is None and point.worst is None and not point.resolvable


@FAST
@given(SETTINGS, a_setting(name="added"), BUDGETS, DIRECTION)
def test_adding_a_setting_never_lowers_the_curve_where_it_is_outside_or_no_weaker(
        ss: list[Setting], added: Setting, budgets: list[float], hib: bool) -> None:
    before = robustness_curve(ss, budgets, higher_is_better=hib)
    after = robustness_curve([*ss, added], budgets, higher_is_better=hib)
    for old, new in zip(before.points, after.points):
        if not added.within(old.budget, hib):  # worse quality than the budget, or unknown
            assert new == old
        elif old.tpr is not None and tpr(added) >= old.value:
            assert new.value == old.value and new.worst == old.worst
        else:  # a within-budget setting with a lower TPR (or the first one) sets the point
            assert new.value == tpr(added) and new.worst == added.key
            assert old.tpr is None or new.value < old.value


@FAST
@given(SETTINGS, BUDGETS, DIRECTION)
def test_the_curve_never_rises_as_the_budget_loosens(ss: list[Setting], budgets: list[float], hib: bool) -> None:
    points = robustness_curve(ss, budgets, higher_is_better=hib).points
    ordered = [p.budget for p in points]
    assert ordered == sorted(ordered, reverse=hib)  # strictest first
    for strict, loose in zip(points, points[1:]):
        assert set(strict.admitted) <= set(loose.admitted)
        if strict.tpr is not None:
            assert loose.tpr is not None and loose.value <= strict.value


@FAST
@given(SETTINGS, st.lists(a_setting(name="unmeasured"), min_size=1, max_size=3), BUDGETS, DIRECTION)
def test_unknown_quality_never_counts(ss: list[Setting], extra: list[Setting], budgets: list[float],
                                      hib: bool) -> None:
    unknown = [Setting(s.attack, s.strength, s.positives, s.positive_samples, s.negatives, None) for s in extra]
    before = robustness_curve(ss, budgets, higher_is_better=hib)
    after = robustness_curve([*unknown, *ss], budgets, higher_is_better=hib)
    assert after.points == before.points and after.area == before.area
    assert set(after.unknown_quality) >= {s.key for s in unknown}
    assert robustness_curve(unknown).points == ()  # default grid: known qualities only


def test_a_setting_with_unknown_quality_alone_is_never_within_budget() -> None:
    curve = robustness_curve([make("jpeg", 50, 0, 10, None), make("jpeg", 80, 0, 10, float("nan"))],
                             [-1e9, 0.0, 1e9])
    assert all(p.tpr is None and p.admitted == () for p in curve.points)
    assert curve.area is None and curve.unknown_quality == (("jpeg", 50), ("jpeg", 80))


@pytest.mark.parametrize("hib", [True, False])
def test_the_clean_setting_alone_gives_its_own_tpr(hib: bool) -> None:
    clean = make("none", None, 17, 20, 45.0 if hib else 3.0)
    budgets = [10.0, 30.0, 45.0] if hib else [3.0, 8.0, 20.0]
    curve = robustness_curve([clean], budgets, higher_is_better=hib)
    own = calibrate(clean).tpr
    assert own.value == 17 / 20
    assert all(p.tpr == own and p.worst == ("none", None) and p.resolvable for p in curve.points)
    assert curve.area == pytest.approx(0.85)
    assert curve.worst_attacks == {b: ("none", None) for b in budgets}


def test_area_is_the_exact_step_area_whatever_the_grid() -> None:
    ss = [make("none", None, 10, 10, 40.0), make("jpeg", 50, 5, 10, 30.0)]
    # (30, 40]: the clean row alone, TPR 1; [20, 30]: jpeg too, TPR 0.5 -> (10 * 1 + 10 * 0.5) / 20
    for grid in ([20.0, 40.0], [20.0, 25.0, 33.0, 40.0]):
        curve = robustness_curve(ss, grid)
        assert curve.area == pytest.approx(0.75)
    assert robustness_curve(ss, [20.0, 40.0]).at(20.0).worst == ("jpeg", 50)
    assert robustness_curve(ss, [20.0, 41.0]).area is None  # (40, 41] admits nothing
    # lower is better (perplexity-like): the same numbers mirrored
    mirrored = [make("none", None, 10, 10, 5.0), make("syn", 1, 5, 10, 15.0)]
    assert robustness_curve(mirrored, [5.0, 25.0], higher_is_better=False).area == pytest.approx(0.75)


@FAST
@given(SETTINGS, BUDGETS, DIRECTION)
def test_area_lies_in_the_unit_interval(ss: list[Setting], budgets: list[float], hib: bool) -> None:
    area = robustness_curve(ss, budgets, higher_is_better=hib).area
    assert area is None or 0.0 <= area <= 1.0


# -- the threshold calibrated on the setting's own negatives ------------------------------

@settings(max_examples=150, deadline=None, database=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3000), st.sampled_from([0.001, 0.01, 0.05, 0.2]),
       st.sampled_from([None, 2, 3]))
def test_the_empirical_threshold_is_the_largest_with_fpr_at_most_the_target(
        seed: int, n: int, target: float, digits: int | None) -> None:
    neg = np.random.default_rng(seed).uniform(size=n)
    if digits is not None:
        neg = np.round(neg, digits)  # ties, as discrete detectors give
    t = empirical_threshold(np.sort(neg), target)
    allowed = math.floor(target * n + 1e-9)
    assert (neg < t).sum() <= allowed  # FPR <= target, ties at t not counted
    assert (neg < t).sum() / n <= target
    if t < 1.0:  # any larger threshold lets one negative too many through
        assert (neg <= t).sum() > allowed


def test_too_few_negatives_is_not_resolvable_and_falls_back_to_theory() -> None:
    target = 0.01
    assert min_negatives(target) == 100 and min_negatives(0.001) == 1000 and min_negatives(0.3) == 4
    few = Setting("jpeg", 50, [0.005, 0.009, 0.015, 0.5], ["a", "b", "c", "d"], np.linspace(0.02, 1, 99), 30.0)
    c = calibrate(few, target)
    assert not c.resolvable and c.threshold == target
    assert c.tpr == tpr_at_fpr(few.positives, few.negatives, target).theory and c.tpr.k == 2
    assert not calibrate(make("x", 0, 1, 1, 1.0, negatives=()), target).resolvable
    enough = Setting("jpeg", 50, few.positives, few.positive_samples, tuple(np.linspace(0.02, 1, 100)), 30.0)
    c = calibrate(enough, target)  # 100 negatives allow one below: the threshold is the second smallest
    assert c.resolvable and c.threshold == enough.negatives[1] and c.fpr.k == 1 and c.tpr.k == 3


def test_uniform_negatives_at_one_per_mille_are_resolvable_and_binomial() -> None:
    """200 seeded draws of n = 1000 honest (uniform) negatives at target 0.001.

    Always resolvable; the in-sample FPR at the empirical threshold never exceeds one
    negative; and the counts below the theoretical threshold agree with
    Binomial(1000, 0.001): the total of 200 independent counts is exactly
    Binomial(200 000, 0.001) (two-sided exact test), and the counts' histogram passes
    a chi-square goodness of fit on {0, 1, 2, >= 3}. Seeds are fixed, so the test is
    deterministic; the 0.001 level only says how surprising a failure would be.
    """
    n, target, draws = 1000, 0.001, 200
    counts = []
    for seed in range(draws):
        neg = np.random.default_rng(seed).uniform(size=n)
        c = calibrate(Setting("none", None, [HIT], ["s"], neg, 1.0), target)
        assert c.resolvable and c.fpr.k <= 1 and c.fpr.value <= target
        counts.append(tpr_at_fpr([HIT], neg, target).theory_fpr.k)
    total = sum(counts)
    assert sp.binomtest(total, n * draws, target).pvalue > 0.001
    observed = [sum(k == i for k in counts) for i in range(3)] + [sum(k >= 3 for k in counts)]
    pmf = [sp.binom.pmf(i, n, target) for i in range(3)]
    expected = [draws * p for p in [*pmf, 1 - sum(pmf)]]
    assert sp.chisquare(observed, expected).pvalue > 0.001


def test_fresh_negatives_see_the_empirical_threshold_slightly_above_target() -> None:
    """Out of sample the (k+1)-th smallest of n uniforms is Beta(k+1, n-k): mean (k+1)/(n+1).

    Documented in ``Calibrated``: the in-sample FPR is at most the target; the FPR
    on new negatives averages (floor(target n) + 1) / (n + 1), here 11/1001.
    """
    n, target = 1000, 0.01
    ts = [empirical_threshold(np.sort(np.random.default_rng(s).uniform(size=n)), target) for s in range(200)]
    mean, sd = 11 / 1001, math.sqrt(11 * 990 / (1001**2 * 1002)) / math.sqrt(200)
    assert abs(np.mean(ts) - mean) < 4 * sd


# -- settings -------------------------------------------------------------------------------

def test_setting_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="sample id"):
        Setting("jpeg", 50, [0.1, 0.2], ["a"], NEG, 30.0)
    with pytest.raises(ValueError, match="no attacked marked item"):
        Setting("jpeg", 50, [], [], NEG, 30.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Setting("jpeg", 50, [1.5], ["a"], NEG, 30.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Setting("jpeg", 50, [0.5], ["a"], [float("nan")], 30.0)
    s = Setting("jpeg", 50, [0.1], ["a"], list(NEG), float("nan"))
    assert s.quality is None and isinstance(s.negatives, tuple) and hash(s)
    assert Setting("none", None, [0.1], ["a"], NEG, math.inf).within(1e9)  # infinite PSNR: no damage


# -- bootstrap and comparison ----------------------------------------------------------------

def mark(worst: int, n: int, keys: int = 1) -> list[Setting]:
    """A clean row and two attacks; the weaker one (blur, quality 30) detects ``worst`` of ``n``."""
    return [make("none", None, n, n, 50.0, keys=keys), make("jpeg", 50, max(worst, n - 1), n, 35.0, keys=keys),
            make("blur", 2, worst, n, 30.0, keys=keys)]


def test_compare_says_which_is_more_robust_and_flips_with_the_numbers() -> None:
    strong, weak = mark(57, 60), mark(15, 60)
    c = compare(strong, weak, 30.0, names=("A", "B"), draws=300)
    assert c.outcome == "a" and c.text == "A more robust than B" and c.n == 60
    assert c.a.point.worst == ("blur", 2) and c.a.low > c.b.high
    assert c.a.low <= c.a.point.value <= c.a.high
    flipped = compare(weak, strong, 30.0, names=("A", "B"), draws=300)
    assert flipped.outcome == "b" and flipped.text == "B more robust than A"
    assert (flipped.a, flipped.b) == (c.b, c.a)  # the same seed on each side: an exact mirror
    # at a budget stricter than blur's quality the weak mark's worst case is jpeg's 59/60
    assert compare(strong, weak, 35.0, draws=300).outcome == "not separable"


def test_three_samples_with_overlapping_intervals_are_not_separable() -> None:
    c = compare(mark(2, 3), mark(1, 3), 30.0, draws=500)
    assert c.outcome == "not separable" and c.text == "not separable at n = 3" and c.n == 3
    assert c.a.low <= c.b.high and c.reason is None


def test_compare_is_deterministic_given_the_seed() -> None:
    a, b = mark(40, 60, keys=2), mark(35, 60, keys=2)
    assert compare(a, b, 30.0, draws=200, seed=7) == compare(a, b, 30.0, draws=200, seed=7)
    case = worst_case(a, 30.0, draws=200, seed=7)
    assert case.samples == 60  # two keys per sample: 120 positives, 60 samples
    assert case.low <= 40 / 60 <= case.high


def test_nothing_within_budget_is_inconclusive_with_the_reason() -> None:
    unmeasured = [make("none", None, 10, 10, None), make("blur", 2, 3, 10, None)]
    c = compare(mark(9, 10), unmeasured, 30.0, names=("A", "B"))
    assert c.outcome == "inconclusive" and c.reason == "B: no setting with known quality within budget 30"
    assert c.text == f"inconclusive: {c.reason}" and math.isnan(c.a.low)
    both = compare(mark(9, 10), mark(9, 10), 60.0)  # stricter than even the clean rows
    assert both.outcome == "inconclusive" and both.reason is not None
    assert both.reason.count("no setting with known quality") == 2


def test_an_unresolvable_threshold_within_budget_is_inconclusive() -> None:
    few = tuple(np.linspace(0.05, 1, 20))  # 20 negatives cannot resolve 1 %
    thin = [*mark(9, 10)[:2], make("blur", 2, 9, 10, 30.0, negatives=few)]
    c = compare(mark(9, 10), thin, 30.0, names=("A", "B"))
    assert c.outcome == "inconclusive"
    assert c.reason == "B: FPR threshold not resolvable at budget 30 (fewer than 100 negatives: blur 2)"
    # at a budget that leaves the thin setting out, the comparison can go ahead
    assert compare(mark(9, 10), thin, 35.0, draws=100).outcome == "not separable"
