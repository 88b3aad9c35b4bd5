"""Geometric attacks: cropping, rescaling, rotation and mirroring.

These keep almost every pixel value intact but move pixels around, so they test a
different weakness from compression or noise: a detector that expects the mark at
fixed positions (a block grid, a frequency layout tied to the image size) loses
synchronisation. Crops and ``resize`` return a smaller image on purpose; the
``*_resize`` variants scale back to the original size to separate "content lost"
from "size changed".
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

from wmbench.api import attack

CROP_FRACTIONS = [0.9, 0.75, 0.6, 0.5]


def _scaled(length: int, factor: float) -> int:
    """``length * factor`` rounded half up, never below one pixel."""
    return max(1, int(math.floor(length * factor + 0.5)))


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize with Pillow, which low-pass filters when shrinking.

    Without that filtering a downscale aliases high frequencies into the result,
    which is both unrealistic (every photo tool filters) and a different attack.
    """
    if image.shape[1] == width and image.shape[0] == height:
        return image.copy()
    resized = Image.fromarray(np.ascontiguousarray(image)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    return np.asarray(resized, dtype=np.uint8).copy()


def _crop(image: np.ndarray, fraction: float, top_pos: float, left_pos: float) -> np.ndarray:
    """Keep ``fraction`` of each side; ``*_pos`` in [0, 1] place the window (0.5 = centre)."""
    height, width = image.shape[:2]
    new_h, new_w = _scaled(height, fraction), _scaled(width, fraction)
    top = int(math.floor(top_pos * (height - new_h) + 0.5))
    left = int(math.floor(left_pos * (width - new_w) + 0.5))
    return image[top : top + new_h, left : left + new_w].copy()


def _random_position(rng: np.random.Generator) -> tuple[float, float]:
    """Relative (top, left) window position drawn from ``rng``.

    The position is relative to the free margin, so an equally seeded generator puts
    the window at the same relative place at every strength: strengths then differ
    only in how much is cut, which keeps robustness curves monotone in expectation.
    """
    top_pos, left_pos = rng.random(2)
    return float(top_pos), float(left_pos)


def _crop_kept(image: np.ndarray, fraction: float) -> float:
    """A crop keeping ``fraction`` of each side keeps this share of the pixels (rounded as cut)."""
    height, width = image.shape[:2]
    return _scaled(height, float(fraction)) * _scaled(width, float(fraction)) / float(height * width)


def _rotated_fraction(height: int, width: int, degrees: float) -> float:
    """Share of the original's pixels still on the canvas after rotating by ``degrees``.

    Rotation is an isometry, so the share of the original that stays on the canvas equals
    the share of the canvas the rotated image covers: the mean of a rotated all-white mask.
    """
    return float(rotate(np.full((height, width, 3), 255, np.uint8), degrees, np.random.default_rng(0))
                 [..., 0].astype(bool).mean())


@attack("crop_center", modality="image", tags={"family": "crop", "geometric": True}, strengths=CROP_FRACTIONS,
        kept=_crop_kept,
        unit="fraction of each side kept")
def crop_center(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Central crop keeping this fraction of each side; the smaller image is returned.

    A crop both removes content and shifts the origin of any block grid the mark
    relies on. ``rng`` is unused.
    """
    return _crop(image, float(strength), 0.5, 0.5)


@attack("crop_random", modality="image", tags={"family": "crop", "geometric": True}, strengths=CROP_FRACTIONS,
        kept=_crop_kept,
        unit="fraction of each side kept")
def crop_random(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Crop at a random position keeping this fraction of each side; not resized back.

    Unlike the centre crop, the shift of the grid origin is arbitrary (not
    symmetric), which defeats detectors that happen to tolerate centred crops.
    """
    return _crop(image, float(strength), *_random_position(rng))


@attack("crop_center_resize", modality="image", tags={"family": "crop", "geometric": True},
        strengths=CROP_FRACTIONS, kept=_crop_kept,
        unit="fraction of each side kept")
def crop_center_resize(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Central crop keeping this fraction of each side, scaled back to full size.

    This is what "zoom in" or a fixed-size thumbnail pipeline does: content is lost
    *and* everything left is rescaled. ``rng`` is unused.
    """
    height, width = image.shape[:2]
    return _resize(_crop(image, float(strength), 0.5, 0.5), width, height)


@attack("crop_random_resize", modality="image", tags={"family": "crop", "geometric": True},
        strengths=CROP_FRACTIONS, kept=_crop_kept,
        unit="fraction of each side kept")
def crop_random_resize(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random-position crop keeping this fraction of each side, scaled back to full size."""
    height, width = image.shape[:2]
    return _resize(_crop(image, float(strength), *_random_position(rng)), width, height)


@attack("resize", modality="image", tags={"family": "resize", "geometric": True}, strengths=[0.9, 0.75, 0.5, 0.3],
        unit="scale per side")
def resize(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Downscale by this factor per side and keep the smaller size.

    The small image is returned as is (not upscaled back): detectors must cope
    with the size a re-hosting site actually serves. ``rng`` is unused.
    """
    height, width = image.shape[:2]
    factor = float(strength)
    return _resize(image, _scaled(width, factor), _scaled(height, factor))


@attack("rotate", modality="image", tags={"family": "rotate", "geometric": True}, strengths=[1, 2, 5, 10, 45],
        kept=lambda image, degrees: _rotated_fraction(image.shape[0], image.shape[1], float(degrees)),
        unit="degrees")
def rotate(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate counter-clockwise by this many degrees on the same canvas, black corners.

    The canvas keeps the original size, so the corners rotated out are lost and the
    uncovered corners are filled with black, as a plain "rotate" in most tools (and
    torchvision's default) does. Black was chosen over mirrored fill because
    reflection would paste copies of marked content into the corners, which could
    help or hurt a detector for reasons unrelated to rotation. Bilinear
    interpolation. ``rng`` is unused.
    """
    height, width = image.shape[:2]
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, float(strength), 1.0)
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


@attack("flip", modality="image", tags={"family": "flip", "geometric": True}, strengths=["horizontal", "vertical"],
        unit="axis")
def flip(image: np.ndarray, strength: str, rng: np.random.Generator) -> np.ndarray:
    """Mirror the image left-right ("horizontal") or upside down ("vertical").

    No pixel value changes, so image-quality metrics are meaningless here and the
    two strengths are not ordered by damage; they are ordered by how common the
    edit is (mirroring is an everyday edit, upside down is rare). ``rng`` is unused.
    """
    if strength == "horizontal":
        return image[:, ::-1].copy()  # copy, not ascontiguousarray: that may return a view
    if strength == "vertical":
        return image[::-1, :].copy()
    raise ValueError(f"flip strength must be 'horizontal' or 'vertical', not {strength!r}")
