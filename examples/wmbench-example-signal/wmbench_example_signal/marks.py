"""``spreadTrace``: an example watermark for the ``signal`` modality, against :mod:`wmbench.api` only.

A keyed additive spread-spectrum mark with a blind correlation detector, in the
spirit of Cox et al. (1997) "Secure spread spectrum watermarking for multimedia".

Embedding. The signal is cut into chips of ``chip`` samples (16 by default; a tail
shorter than one chip is left as it is). A pseudo-random generator seeded by the key
(numpy's PCG64, seeded with the SHA-256 of the key; its raw output, which numpy keeps
bit-for-bit stable across versions) gives one sign ``w_j`` in {-1, +1} per chip. Every
sample of chip j gets ``strength * std(x) * w_j`` added, so the mark's power is
``strength**2`` times the signal's variance: SNR = -20 log10(strength), 26 dB at the
default 0.05, whatever the signal's scale. A chip spans several samples so that the
mark lives below the noise's high frequencies: a short moving average leaves most of
it, as JPEG leaves an image mark that is flat inside 8 x 8 blocks.

Detection. Let ``b_j`` be the mean of chip j and ``r_j = b_j - (b_{j-1} + b_{j+1}) / 2``
its residual against its two neighbours (mirrored at the ends): a second difference,
which removes most of a smooth signal and keeps most of the mark, since the
neighbours' signs are independent of chip j's. The score is the normalised correlation

    z = sum_j r_j w_j / sqrt(sum_j r_j**2)

and the p-value its one-sided normal tail, ``P(Z >= z) = erfc(z / sqrt 2) / 2``: the
mark only pushes ``z`` up.

Why the p-value is calibrated under H0. H0 says the item does not carry the mark of
*this* key: whatever it is (a clean trace, another key's mark, an attacked copy), it
was made without this key's signs. Given the item, the residuals ``r_j`` are fixed
numbers (they are computed from the item alone), and the signs ``w_j`` are independent
fair coin flips (the generator's output for a key the item never saw). Then
``sum r_j w_j`` has mean 0 and variance exactly ``sum r_j**2``, so ``z`` has mean 0
and variance 1, and as a sum of at least ``MIN_CHIPS`` independent bounded terms none
of which dominates it is close to N(0, 1) (Lindeberg's central limit theorem). Its
normal tail is then close to uniform on [0, 1] over keys, so ``p < alpha`` is a false
positive with probability close to alpha, for every fixed item, which is what the
report's FPR counts. Where a few chips dominate the sum (a single huge spike) the
normal approximation is poorer; Hoeffding's inequality still bounds the tail by
``exp(-z**2 / 2)`` with no approximation, for anyone who wants a guaranteed-
conservative p-value. The tests check the uniformity over many keys.

A marked item adds about ``strength * std(x)`` per chip to the numerator, so
``z`` grows like ``sqrt(n) * strength * std(x) / sigma_r`` for n chips, with
``sigma_r`` the residual's spread: 5.6 to 12 on the built-in traces (256 chips) at
the default strength, lowest where a trace's fastest sine leaves most in the residual. What it does not survive: anything that shifts the chip grid
(a crop, a time shift, resampling) breaks the alignment and the detector honestly
finds nothing.
"""

from __future__ import annotations

import hashlib
import math
from typing import ClassVar

import numpy as np

from wmbench.api import Detection, DetectorRefused, Watermarker, watermarker

MIN_CHIPS = 64  # below this the normal approximation of the null is not to be trusted


def chips(key: str, count: int) -> np.ndarray:
    """The key's ``count`` signs (+1.0 / -1.0), from a PCG64 generator seeded by the key's SHA-256."""
    seed = int.from_bytes(hashlib.sha256(f"wmbench-example-signal:{key}".encode()).digest(), "big")
    raw = np.random.PCG64(seed).random_raw((count + 63) // 64)  # raw words: stable across numpy versions
    bits = np.unpackbits(np.ascontiguousarray(raw, dtype="<u8").view(np.uint8), bitorder="little")[:count]
    return 2.0 * bits - 1.0


def _chip_count(item: np.ndarray, chip: int, error: type[ValueError]) -> int:
    if not isinstance(item, np.ndarray) or item.ndim != 1:
        raise error(f"expected a 1-D signal, got {getattr(item, 'shape', type(item).__name__)}")
    count = item.size // chip
    if count < MIN_CHIPS:
        raise error(f"signal has {item.size} samples; spreadTrace needs at least {MIN_CHIPS * chip} "
                    f"({MIN_CHIPS} chips of {chip})")
    return count


@watermarker
class SpreadTrace(Watermarker):
    """Keyed ±1 chip sequence added to a 1-D signal, normalised-correlation detector."""

    name = "spreadTrace"
    modality = "signal"
    relative_cost = 0.05  # well under a millisecond per call on 4,096 samples
    # strength: chip amplitude as a fraction of the signal's standard deviation;
    # chip: samples per sign
    parameters: ClassVar[dict[str, float | int]] = {"strength": 0.05, "chip": 16}

    def __init__(self, strength: float = 0.05, chip: int = 16) -> None:
        if not strength > 0:
            raise ValueError(f"spreadTrace: strength must be positive, not {strength!r}")
        if isinstance(chip, bool) or not isinstance(chip, int) or chip < 1:
            raise ValueError(f"spreadTrace: chip must be a positive whole number of samples, not {chip!r}")
        self.strength = float(strength)
        self.chip = chip

    def embed(self, item: np.ndarray, key: str) -> np.ndarray:
        count = _chip_count(item, self.chip, ValueError)
        scale = float(np.std(item))
        if scale == 0.0:
            raise ValueError("spreadTrace: the signal is constant; there is no spread to scale the mark to")
        delta = np.zeros_like(item, dtype=np.float64)
        delta[: count * self.chip] = np.repeat(chips(key, count), self.chip) * (self.strength * scale)
        return item.astype(np.float64) + delta  # a new array: the input is never modified

    def detect(self, item: np.ndarray, key: str) -> Detection:
        count = _chip_count(item, self.chip, DetectorRefused)
        means = item[: count * self.chip].astype(np.float64).reshape(count, self.chip).mean(axis=1)
        padded = np.pad(means, 1, mode="reflect")
        residual = means - (padded[:-2] + padded[2:]) / 2.0  # a function of the item only: the null needs that
        w = chips(key, count)
        norm = math.sqrt(float(np.sum(residual**2)))
        if norm == 0.0:  # a constant or perfectly linear signal: no evidence either way
            return Detection(score=0.0, p_value=1.0, bits_matched=0, bits_total=count)
        z = float(np.dot(residual, w)) / norm
        return Detection(
            score=z,
            p_value=0.5 * math.erfc(z / math.sqrt(2.0)),
            bits_matched=int(np.sum(np.sign(residual) == w)),  # chips whose residual agrees in sign
            bits_total=count,
        )
