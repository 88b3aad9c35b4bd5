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
    """Mean SSIM over colour channels (Wang et al. 2004), 7x7 uniform window.

    Same definition and constants as ``skimage.metrics.structural_similarity`` with
    ``channel_axis=2, data_range=255`` (a test checks agreement to 1e-6), computed
    with OpenCV box filters: about 10x faster, which matters because every cell of
    a suite measures it.
    """
    if reference.shape != test.shape or min(reference.shape[:2]) < _WIN:
        return None
    import cv2

    x = reference.astype(np.float64)
    y = test.astype(np.float64)
    n = _WIN * _WIN
    cov_norm = n / (n - 1.0)  # sample covariance, as skimage's default

    def mean(a: np.ndarray) -> np.ndarray:
        return cv2.blur(a, (_WIN, _WIN), borderType=cv2.BORDER_REFLECT_101)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (_WIN - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


_WIN = 7
