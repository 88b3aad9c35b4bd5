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
