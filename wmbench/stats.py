"""Statistics shared by both modalities: p-values, rates and their intervals.

Every detector reports a p-value: the probability that an item *without* the mark
scores at least as high. "Detected" means p < alpha, so alpha is the false-positive
rate the theory promises; the bench also measures the real rate on unmarked items,
because libraries do not always behave as their theory says.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _sp


@functools.lru_cache(maxsize=4096)  # detection asks for the same few (k, n) again and again
def binomial_tail(successes: int, trials: int, p: float = 0.5) -> float:
    """Exact P(X >= successes) for X ~ Binomial(trials, p); 1.0 when trials == 0."""
    if trials <= 0 or successes <= 0:
        return 1.0
    if successes > trials:
        raise ValueError(f"successes ({successes}) exceed trials ({trials})")
    return float(_sp.binom.sf(successes - 1, trials, p))


@dataclass(frozen=True)
class Rate:
    """A proportion k/n with a two-sided confidence interval."""

    k: int
    n: int
    low: float
    high: float
    method: str

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def __str__(self) -> str:
        if not self.n:
            return "n/a"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval: well-behaved near 0 and 1, where detection rates live."""
    if n == 0:
        return (0.0, 1.0)
    z = _sp.norm.ppf(0.5 + confidence / 2)
    phat = k / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    # At k = 0 or k = n the exact bound is 0 or 1; floating point would miss it by 1e-16.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (conservative) interval from the beta quantiles."""
    if n == 0:
        return (0.0, 1.0)
    a = 1 - confidence
    low = 0.0 if k == 0 else float(_sp.beta.ppf(a / 2, k, n - k + 1))
    high = 1.0 if k == n else float(_sp.beta.ppf(1 - a / 2, k + 1, n - k))
    return (low, high)


def rate(k: int, n: int, method: str = "wilson", confidence: float = 0.95) -> Rate:
    if method == "wilson":
        low, high = wilson_interval(k, n, confidence)
    elif method in ("clopper-pearson", "exact"):
        low, high = clopper_pearson_interval(k, n, confidence)
        method = "clopper-pearson"
    else:
        raise ValueError(f"unknown interval method {method!r}; valid: wilson, clopper-pearson")
    return Rate(k=k, n=n, low=low, high=high, method=method)


# -- operating points, ROC ---------------------------------------------------------

@dataclass(frozen=True)
class OperatingPoint:
    """Detection at a target false-positive rate, by two thresholds.

    * theory: "detected" when p < target. Honest p-values make the FPR at most the
      target; ``theory_fpr`` is what the negatives measured at that threshold.
    * empirical: the p-value threshold the measured negatives allow (at most
      ``floor(target * n)`` negatives below it). It needs at least ``1 / target``
      negatives to mean anything (``resolvable``); with fewer it is the smallest
      negative p-value, i.e. "no false positive seen", which is weaker than the target.

    ``disagree`` flags a detector whose negatives show significantly more false
    positives than the theory promises (the FPR interval lies above the target).
    """

    target_fpr: float
    theory: Rate
    theory_fpr: Rate
    empirical: Rate | None
    empirical_threshold: float | None
    resolvable: bool
    disagree: bool


def min_negatives(target_fpr: float) -> int:
    """Negatives an empirical threshold at ``target_fpr`` needs to mean anything: ceil(1 / target).

    With fewer, even a threshold below every negative cannot show an FPR as low as the target.
    """
    return math.ceil(1 / target_fpr - 1e-9)  # 1e-9: 1 / 0.001 must give 1000, not 1001


def empirical_threshold(sorted_negatives: np.ndarray, target_fpr: float) -> float:
    """The largest t with at most ``floor(target * n)`` of the (sorted) negatives strictly below t.

    That is the (floor(target * n) + 1)-th smallest negative: "detected" means p < t, so
    negatives tied with t are not false positives and the measured FPR never exceeds the
    target (ties below t only lower it). 1.0 when the target allows every negative.
    """
    allowed = int(math.floor(target_fpr * len(sorted_negatives) + 1e-9))
    return float(sorted_negatives[allowed]) if allowed < len(sorted_negatives) else 1.0


def tpr_at_fpr(positives: Sequence[float], negatives: Sequence[float], target_fpr: float,
               method: str = "wilson") -> OperatingPoint:
    """TPR of p-values ``positives`` at ``target_fpr``, thresholds from theory and negatives."""
    if not 0 < target_fpr < 1:
        raise ValueError(f"target FPR must lie strictly between 0 and 1, got {target_fpr}")
    pos = np.asarray(positives, dtype=float)
    neg = np.sort(np.asarray(negatives, dtype=float))
    theory = rate(int((pos < target_fpr).sum()), len(pos), method)
    theory_fpr = rate(int((neg < target_fpr).sum()), len(neg), method)
    empirical = threshold = None
    if len(neg):
        threshold = empirical_threshold(neg, target_fpr)
        empirical = rate(int((pos < threshold).sum()), len(pos), method)
    return OperatingPoint(
        target_fpr=target_fpr, theory=theory, theory_fpr=theory_fpr, empirical=empirical,
        empirical_threshold=threshold, resolvable=len(neg) >= min_negatives(target_fpr),
        disagree=theory_fpr.n > 0 and theory_fpr.low > target_fpr,
    )


def evidence(p_values: Sequence[float]) -> np.ndarray:
    """-log10 p: one score scale for every detector (higher = more evidence of the mark)."""
    p = np.clip(np.asarray(p_values, dtype=float), 1e-300, 1.0)
    return -np.log10(p)


@dataclass(frozen=True)
class Roc:
    fpr: tuple[float, ...]  # from 0 to 1
    tpr: tuple[float, ...]
    auc: float
    auc_low: float  # bootstrap percentile interval
    auc_high: float
    n_pos: int
    n_neg: int


def auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a positive > a negative), ties counting 1/2."""
    neg = np.sort(negatives)
    below = np.searchsorted(neg, positives, side="left")
    not_above = np.searchsorted(neg, positives, side="right")
    return float((below + not_above).sum() / (2.0 * len(positives) * len(neg)))


def roc(pos_p: Sequence[float], neg_p: Sequence[float], bootstrap: int = 1000, seed: int = 0,
        confidence: float = 0.95) -> Roc | None:
    """ROC of positives vs negatives on the evidence scale, with a bootstrap AUC interval.

    The bootstrap resamples positives and negatives apart (they are independent
    samples) with a fixed seed, so a report is reproducible. None without both.
    """
    pos, neg = evidence(pos_p), evidence(neg_p)
    if not len(pos) or not len(neg):
        return None
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    def at_or_above(scores: np.ndarray) -> list[float]:
        ordered = np.sort(scores)
        return [0.0] + list((len(ordered) - np.searchsorted(ordered, thresholds, side="left")) / len(ordered))

    tpr, fpr = at_or_above(pos), at_or_above(neg)
    rng = np.random.default_rng(seed)
    draws = [auc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(bootstrap)]
    tail = (1 - confidence) / 2
    low, high = (np.quantile(draws, [tail, 1 - tail]) if bootstrap else (float("nan"), float("nan")))
    return Roc(tuple(fpr), tuple(tpr), auc(pos, neg), float(low), float(high), len(pos), len(neg))
