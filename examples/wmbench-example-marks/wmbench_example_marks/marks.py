"""An example image watermark, written against :mod:`wmbench.api` and numpy only.

``spreadSpectrum`` is a keyed additive spread-spectrum mark in the luminance with a
blind correlation detector, in the spirit of Cox et al. (1997) "Secure spread
spectrum watermarking for multimedia": the key spreads a faint ±1 pattern over the
whole image, and the detector measures how well the image correlates with it.

Embedding. The image is cut into 8 x 8 blocks (the JPEG grid; a right or bottom edge
narrower than a block is left as it is). The key's SHAKE-256 output gives one chip
``w_j`` in {-1, +1} per block: for a key not otherwise known, independent fair signs.
Every pixel of block j gets ``strength * w_j`` added to its three channels, which
adds exactly that to the luminance Y = 0.299 R + 0.587 G + 0.114 B and leaves the
colour (Cb, Cr) alone. The squared error per pixel is ``strength**2`` (before
rounding, and clipping at 0 and 255), so PSNR is about 20 log10(255 / strength):
42 dB at the default 2.0. A pattern that is flat inside JPEG's 8 x 8 blocks only
moves their DC coefficients (the block means), which JPEG keeps to within a step
of 0.4 to 3.3 grey levels of the mean from quality 90 down to 30: hence the
robustness to it. The price is a faint blockiness in flat regions; the pattern is
not shaped to the eye, as a production mark would be.

Detection. Let ``b_j`` be block j's mean luminance and ``a_j = b_j - m_j`` its
residual, ``m_j`` the mean of the 4 blocks above, below, left and right (mirrored
at the edges), a discrete Laplacian: subtracting the neighbourhood removes most of
the picture, which would otherwise drown the pattern, and keeps most of the mark,
since the neighbours' chips are independent of block j's.
The score is the normalised correlation

    z = sum_j a_j w_j / sqrt(sum_j a_j**2).

The statistics. Under H0 the image does not carry the mark of this key: whatever
it carries, it was made without this key's chips, so given the image the ``a_j``
are fixed numbers and the ``w_j`` are independent fair signs. Then ``sum a_j w_j``
has mean 0 and variance exactly ``sum a_j**2``, so ``z`` has mean 0 and variance 1,
and being a sum of thousands of independent terms none of which dominates, it is
close to N(0, 1) (central limit theorem). The p-value is the one-sided normal tail
``P(Z >= z) = erfc(z / sqrt 2) / 2``: the mark only pushes ``z`` up. Over keys the
p-values of an unmarked image are therefore close to uniform on [0, 1], and
``p < alpha`` is a false positive with probability close to alpha; the tests check
both. (Hoeffding's inequality bounds the same tail by ``exp(-z**2 / 2)`` with no
approximation at all, for anyone who wants a guaranteed-conservative p-value.)
A marked image adds about ``strength * n`` to the numerator for n blocks, so
``z`` grows like ``strength * sqrt(n) / sigma`` with ``sigma`` the residual's
spread: on scikit-image's photos (1,800 to 5,700 blocks) z is about 3 to 21 at
the default strength, still after JPEG at quality 30. Any function of the image
alone may replace the Laplacian without touching the argument above (a median
predictor and clipping the residual's outliers roughly double z on busy photos);
the example keeps the plainest one.

What it does not survive: anything that moves the block grid (crop by a few
pixels, resize, rotation) breaks the alignment between image and pattern, and the
detector, honestly, finds nothing (p uniform again). That is a property of the
scheme, and exactly what a benchmark is for.
"""

from __future__ import annotations

import hashlib
import math
from typing import ClassVar

import numpy as np

from wmbench.api import Detection, DetectorRefused, Watermarker, as_rgb_uint8, watermarker

BLOCK = 8  # pixels per side of one chip: JPEG's block
MIN_BLOCKS = 16  # per side; 16 x 16 = 256 chips at the least, plenty for the normal approximation
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as JPEG uses


def chips(key: str, rows: int, cols: int) -> np.ndarray:
    """The key's ±1 pattern for a grid of ``rows`` x ``cols`` blocks, row by row.

    The chips are the bits of SHAKE-256 of the key (1 -> +1, 0 -> -1): fixed by the
    key alone, on any machine and with any numpy version.
    """
    stream = hashlib.shake_256(f"wmbench-example-marks:{key}".encode()).digest((rows * cols + 7) // 8)
    bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8))[: rows * cols]
    return (2.0 * bits - 1.0).reshape(rows, cols)


def _grid(image: np.ndarray, error: type[ValueError]) -> tuple[int, int]:
    if image.ndim != 3 or image.shape[2] != 3:
        raise error(f"expected an H x W x 3 RGB image, got shape {image.shape}")
    rows, cols = image.shape[0] // BLOCK, image.shape[1] // BLOCK
    if min(rows, cols) < MIN_BLOCKS:
        side = BLOCK * MIN_BLOCKS
        raise error(f"image is {image.shape[1]}x{image.shape[0]}; spreadSpectrum needs at least "
                    f"{side}x{side} pixels")
    return rows, cols


@watermarker
class SpreadSpectrum(Watermarker):
    """Keyed ±1 spread-spectrum pattern on 8x8 luminance blocks, correlation detector."""

    name = "spreadSpectrum"
    modality = "image"
    min_pixels = (BLOCK * MIN_BLOCKS) ** 2  # 128 x 128; each side must reach 128 too
    relative_cost = 0.2  # a few ms per call at 512 x 512
    parameters: ClassVar[dict[str, float]] = {"strength": 2.0}  # grey levels added or removed per pixel

    def __init__(self, strength: float = 2.0) -> None:
        if not strength > 0:
            raise ValueError(f"spreadSpectrum: strength must be positive, not {strength!r}")
        self.strength = float(strength)

    def embed(self, item: np.ndarray, key: str) -> np.ndarray:
        rows, cols = _grid(item, ValueError)
        pattern = np.kron(chips(key, rows, cols), np.ones((BLOCK, BLOCK)))  # one chip per block
        delta = np.zeros(item.shape[:2])
        delta[: rows * BLOCK, : cols * BLOCK] = self.strength * pattern
        return as_rgb_uint8(item + delta[:, :, None])  # float sum: the input is never modified

    def detect(self, item: np.ndarray, key: str) -> Detection:
        rows, cols = _grid(item, DetectorRefused)
        luma = item[: rows * BLOCK, : cols * BLOCK].astype(np.float64) @ LUMA
        means = luma.reshape(rows, BLOCK, cols, BLOCK).mean(axis=(1, 3))
        padded = np.pad(means, 1, mode="reflect")
        around = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) / 4.0
        residual = means - around  # a function of the image only: the null argument needs that
        w = chips(key, rows, cols)
        norm = math.sqrt(float(np.sum(residual**2)))
        if norm == 0.0:  # a flat image: no evidence either way
            return Detection(score=0.0, p_value=1.0, bits_matched=0, bits_total=w.size)
        z = float(np.sum(residual * w)) / norm
        return Detection(
            score=z,
            p_value=0.5 * math.erfc(z / math.sqrt(2.0)),
            bits_matched=int(np.sum(np.sign(residual) == w)),  # chips whose sign the residual agrees with
            bits_total=int(w.size),
        )
