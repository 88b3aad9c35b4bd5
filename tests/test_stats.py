"""wmbench.stats against SciPy's reference implementations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from wmbench.stats import Rate, binomial_tail, clopper_pearson_interval, rate, wilson_interval

CONFIDENCES = st.sampled_from([0.8, 0.9, 0.95, 0.99])


@st.composite
def k_and_n(draw: st.DrawFn, max_n: int = 64) -> tuple[int, int]:
    n = draw(st.integers(1, max_n))
    return draw(st.integers(0, n)), n


@settings(max_examples=150, deadline=None, database=None)
@given(k_and_n())
def test_binomial_tail_equals_scipy_one_sided_binomtest(kn: tuple[int, int]) -> None:
    k, n = kn
    expected = binomtest(k, n, 0.5, alternative="greater").pvalue
    got = binomial_tail(k, n)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_binomial_tail_exact_values() -> None:
    assert binomial_tail(32, 32) == 0.5**32  # all 32 payload bits match
    assert binomial_tail(16, 32) == pytest.approx(0.5 + math.comb(32, 16) / 2**33)
    assert binomial_tail(1, 1) == 0.5
    # monotone: more matching bits, smaller p
    tails = [binomial_tail(k, 32) for k in range(33)]
    assert all(a > b for a, b in zip(tails, tails[1:]))


@pytest.mark.parametrize("n", [0, 1, 5, 32, 64])
def test_binomial_tail_zero_successes_is_one(n: int) -> None:
    assert binomial_tail(0, n) == 1.0


def test_binomial_tail_zero_trials_is_one() -> None:
    assert binomial_tail(0, 0) == 1.0


@pytest.mark.parametrize(("k", "n"), [(2, 1), (33, 32), (65, 64)])
def test_binomial_tail_more_successes_than_trials_raises(k: int, n: int) -> None:
    with pytest.raises(ValueError, match="exceed"):
        binomial_tail(k, n)


@settings(max_examples=150, deadline=None, database=None)
@given(k_and_n(), CONFIDENCES)
def test_wilson_matches_scipy(kn: tuple[int, int], confidence: float) -> None:
    k, n = kn
    low, high = wilson_interval(k, n, confidence)
    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert low == pytest.approx(ref.low, abs=1e-9)
    assert high == pytest.approx(ref.high, abs=1e-9)
    # contains the point estimate (up to rounding: the exact version is the xfail below)
    assert 0.0 <= low <= k / n + 1e-12 and k / n - 1e-12 <= high <= 1.0
    assert low < high


@pytest.mark.parametrize(("k", "n"), [(10, 10), (25, 25), (0, 3), (0, 25)])
def test_wilson_contains_the_point_estimate_exactly_at_the_edges(k: int, n: int) -> None:
    low, high = wilson_interval(k, n)
    assert low <= k / n <= high
    if k == 0:
        assert low == 0.0
    if k == n:
        assert high == 1.0


@settings(max_examples=150, deadline=None, database=None)
@given(k_and_n(), CONFIDENCES)
def test_clopper_pearson_matches_scipy_exact(kn: tuple[int, int], confidence: float) -> None:
    k, n = kn
    low, high = clopper_pearson_interval(k, n, confidence)
    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    assert low == pytest.approx(ref.low, abs=1e-9)
    assert high == pytest.approx(ref.high, abs=1e-9)
    assert 0.0 <= low <= k / n <= high <= 1.0
    if k == 0:
        assert low == 0.0
    if k == n:
        assert high == 1.0


def test_intervals_narrow_as_n_grows() -> None:
    widths = [wilson_interval(n // 2, n)[1] - wilson_interval(n // 2, n)[0] for n in (10, 100, 1000)]
    assert widths[0] > widths[1] > widths[2]
    widths = [clopper_pearson_interval(n // 2, n)[1] - clopper_pearson_interval(n // 2, n)[0] for n in (10, 100, 1000)]
    assert widths[0] > widths[1] > widths[2]


def test_empty_intervals_are_uninformative() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert clopper_pearson_interval(0, 0) == (0.0, 1.0)


def test_rate() -> None:
    r = rate(7, 10)
    assert isinstance(r, Rate) and r.method == "wilson"
    assert r.value == 0.7
    assert (r.low, r.high) == wilson_interval(7, 10)
    assert str(r) == f"0.700 [{r.low:.3f}, {r.high:.3f}]"
    exact = rate(7, 10, "exact")
    assert exact.method == "clopper-pearson"
    assert (exact.low, exact.high) == clopper_pearson_interval(7, 10)
    empty = rate(0, 0)
    assert math.isnan(empty.value) and str(empty) == "n/a"
    with pytest.raises(ValueError, match="wilson, clopper-pearson"):
        rate(1, 2, "bayes")


# -- operating points and ROC ---------------------------------------------------------

import numpy as np  # noqa: E402

from wmbench.stats import auc, evidence, roc, tpr_at_fpr  # noqa: E402

P_VALUES = st.lists(st.floats(1e-12, 1.0, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None, database=None)
@given(P_VALUES, P_VALUES)
def test_auc_is_the_mann_whitney_probability(pos: list[float], neg: list[float]) -> None:
    from scipy.stats import mannwhitneyu

    a, b = evidence(pos), evidence(neg)
    u = mannwhitneyu(a, b, alternative="two-sided").statistic
    assert auc(a, b) == pytest.approx(u / (len(a) * len(b)), abs=1e-12)


@settings(max_examples=100, deadline=None, database=None)
@given(P_VALUES, P_VALUES)
def test_roc_runs_from_origin_to_corner_and_never_goes_back(pos: list[float], neg: list[float]) -> None:
    curve = roc(pos, neg, bootstrap=50)
    assert (curve.fpr[0], curve.tpr[0]) == (0.0, 0.0)
    assert curve.fpr[-1] == pytest.approx(1.0) and curve.tpr[-1] == pytest.approx(1.0)
    assert all(np.diff(curve.fpr) >= 0) and all(np.diff(curve.tpr) >= 0)
    # trapezoid area under the curve equals the rank AUC
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(curve.auc, abs=1e-9)
    assert curve.auc_low <= curve.auc + 1e-9 and curve.auc <= curve.auc_high + 1e-9


def test_roc_needs_both_classes() -> None:
    assert roc([0.01], []) is None and roc([], [0.5]) is None


@settings(max_examples=150, deadline=None, database=None)
@given(P_VALUES, P_VALUES, st.sampled_from([0.01, 0.05, 0.1]))
def test_empirical_threshold_keeps_the_measured_fpr_within_target(pos: list[float], neg: list[float],
                                                                  target: float) -> None:
    point = tpr_at_fpr(pos, neg, target)
    false_alarms = sum(p < point.empirical_threshold for p in neg)
    assert false_alarms <= int(target * len(neg) + 1e-9)
    assert point.resolvable == (len(neg) * target >= 1)
    assert point.theory.k == sum(p < target for p in pos)


def test_theory_and_negatives_disagree_when_negatives_fire_too_often() -> None:
    calibrated = tpr_at_fpr([1e-6] * 10, list(np.linspace(0.001, 1, 1000)), 0.01)
    assert not calibrated.disagree and calibrated.resolvable
    assert calibrated.theory_fpr.value == pytest.approx(0.009, abs=0.002)
    broken = tpr_at_fpr([1e-6] * 10, [0.001] * 30 + [0.5] * 70, 0.01)  # 30 % of negatives below 0.01
    assert broken.disagree
    assert broken.empirical_threshold == 0.001 and broken.empirical.k == 10  # 1e-6 < 0.001: still detected
