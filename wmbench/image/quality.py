"""Image quality: how much damage an embedding or an attack did, against the original.

Both metrics need equal sizes; a crop or a downscale changes the size and so has no
pixel-aligned reference. Those cells record ``None`` rather than a number computed
on some arbitrary realignment.
"""

from __future__ import annotations

import numpy as np


def psnr(reference: np.ndarray, test: np.ndarray) -> float | None:
    if reference.shape != test.shape:
        return None
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * np.log10(255.0**2 / mse)


def ssim(reference: np.ndarray, test: np.ndarray) -> float | None:
    if reference.shape != test.shape or min(reference.shape[:2]) < 7:
        return None
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, test, channel_axis=2, data_range=255))
