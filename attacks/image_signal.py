"""Signal-processing attacks: filtering, noise, tone curves and local overwrites.

They keep the image size and pixel positions, and change values only: a mark that
survives them but not geometric attacks is fragile to desynchronisation rather than
to value changes, which is the distinction the report should make visible.

Tone attacks (brightness, contrast, gamma) are 256-entry lookup tables, so they
cost one table lookup per pixel whatever the strength.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from wmbench.api import as_rgb_uint8, attack

# Rec. 601 luma weights, the ones Pillow's ImageEnhance.Contrast uses for its mean.
_LUMA = np.array([0.299, 0.587, 0.114])


def _apply_lut(image: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Map every channel value through ``curve`` (256 floats), rounded and clipped."""
    table = as_rgb_uint8(curve)
    return table[image]  # fancy indexing returns a new array


def _levels() -> np.ndarray:
    return np.arange(256, dtype=np.float64)


@attack("gaussian_blur", modality="image", tags={"family": "filter"}, strengths=[0.5, 1, 2, 4], unit="sigma in pixels")
def gaussian_blur(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur with this sigma in pixels.

    Removes the high frequencies where many invisible marks hide their energy.
    Borders are mirrored (no dark frame). ``rng`` is unused.
    """
    sigma = float(strength)
    return cv2.GaussianBlur(
        np.ascontiguousarray(image),
        (0, 0),
        sigmaX=sigma,
        sigmaY=sigma,
        borderType=cv2.BORDER_REFLECT_101,
    )


@attack("gaussian_noise", modality="image", tags={"family": "noise"}, strengths=[2, 5, 10, 20],
        unit="sigma in 8-bit levels")
def gaussian_noise(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise with this standard deviation in 8-bit levels.

    Independent per pixel and channel, drawn from ``rng``; values are clipped to
    0..255, so saturated areas get less than the nominal noise.
    """
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(strength)
    return as_rgb_uint8(image.astype(np.float32) + noise)


@attack("brightness", modality="image", tags={"family": "photometric"}, strengths=[1.1, 1.25, 1.5, 2.0],
        unit="factor")
def brightness(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Brighten by multiplying every value by this factor (clipped at white).

    A factor rather than an offset because that is what an exposure change does;
    at the strong end highlights saturate, which erases any mark there for good.
    ``rng`` is unused.
    """
    return _apply_lut(image, _levels() * float(strength))


@attack("contrast", modality="image", tags={"family": "photometric"}, strengths=[0.9, 0.75, 0.5, 0.3],
        unit="factor")
def contrast(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Scale contrast by this factor around the mean grey level (below 1 flattens).

    Pulling values towards the mean shrinks the mark's amplitude along with the
    image's, then 8-bit rounding removes what falls under one level. ``rng`` is unused.
    """
    mean = float(np.mean(image.reshape(-1, 3) @ _LUMA))
    return _apply_lut(image, mean + float(strength) * (_levels() - mean))


@attack("gamma", modality="image", tags={"family": "photometric"}, strengths=[0.9, 0.75, 0.5, 0.3], unit="gamma")
def gamma(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Gamma curve ``out = 255 * (in / 255) ** gamma``; below 1 lifts the shadows.

    A non-linear tone change: unlike ``brightness`` it stretches dark values and
    compresses bright ones, so a mark embedded with uniform amplitude ends up
    uneven across the image. ``rng`` is unused.
    """
    return _apply_lut(image, 255.0 * (_levels() / 255.0) ** float(strength))


@attack("median_filter", modality="image", tags={"family": "filter"}, strengths=[3, 5, 7, 9], unit="kernel in pixels")
def median_filter(image: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """Median filter with this (odd) square kernel size, per channel.

    Non-linear: it keeps edges but removes small isolated structures, the opposite
    trade-off from a blur, so marks robust to one may not be to the other.
    ``rng`` is unused.
    """
    size = int(strength)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median_filter kernel size must be odd and positive, not {strength!r}")
    return cv2.medianBlur(np.ascontiguousarray(image), size)


def _rectangle(height: int, width: int, area_fraction: float, aspect: float) -> tuple[int, int]:
    """Height and width of a rectangle of ``area_fraction`` of the image, clipped to it."""
    area = area_fraction * height * width
    rect_h = min(float(height), math.sqrt(area * aspect))
    rect_w = min(float(width), area / rect_h)
    rect_h = min(float(height), area / rect_w)
    return max(1, round(rect_h)), max(1, round(rect_w))


def _place(length: int, size: int, position: float) -> int:
    """Start offset of a ``size`` window at relative ``position`` in [0, 1]."""
    return int(math.floor(position * (length - size) + 0.5))


@attack("occlusion", modality="image", tags={"family": "occlusion"}, strengths=[0.05, 0.1, 0.25, 0.5],
        kept=lambda image, strength: 1.0 - float(strength), unit="fraction of area covered")
def occlusion(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Cover this fraction of the area with one flat-coloured rectangle at a random place.

    Stands for a sticker, a caption box or a cut-out: the covered pixels carry no
    mark at all, so this tests how much of the image the detector needs. Colour,
    aspect ratio (1:2 to 2:1) and relative position come from ``rng`` and are drawn
    the same way at every strength, so with an equally seeded generator a stronger
    occlusion covers a superset of a weaker one.
    """
    height, width = image.shape[:2]
    colour = rng.integers(0, 256, size=3, dtype=np.uint8)
    aspect = float(np.exp(rng.uniform(-math.log(2.0), math.log(2.0))))
    top_pos, left_pos = rng.random(2)
    rect_h, rect_w = _rectangle(height, width, float(strength), aspect)
    top, left = _place(height, rect_h, top_pos), _place(width, rect_w, left_pos)
    out = image.copy()
    out[top : top + rect_h, left : left + rect_w] = colour
    return out


def _logo_mask(size: int) -> np.ndarray:
    """A text-free round logo on a ``size`` x ``size`` grid: a ring around a disc."""
    centre = (size - 1) / 2.0
    coords = (np.arange(size) - centre) / max(size / 2.0, 0.5)
    radius = np.hypot(coords[:, None], coords[None, :])
    return ((radius >= 0.7) & (radius <= 1.0)) | (radius <= 0.4)


@attack("overlay", modality="image", tags={"family": "overlay"}, strengths=[0.1, 0.25, 0.4, 0.6], unit="opacity")
def overlay(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Blend a semi-transparent logo over the image at this opacity.

    Models a visible "stock photo" or channel logo stamped on top. Strength is the
    opacity rather than the size, because ``occlusion`` already covers "how much
    area is lost": here every covered pixel still holds the mark, scaled by
    ``1 - opacity`` and mixed with the logo. The logo (a ring around a disc,
    40% of the shorter side) has a colour and relative position from ``rng``.
    """
    height, width = image.shape[:2]
    colour = rng.integers(0, 256, size=3).astype(np.float32)
    top_pos, left_pos = rng.random(2)
    size = max(1, round(0.4 * min(height, width)))
    top, left = _place(height, size, top_pos), _place(width, size, left_pos)
    alpha = _logo_mask(size)[:, :, None] * np.float32(strength)
    out = image.copy()
    region = out[top : top + size, left : left + size].astype(np.float32)
    out[top : top + size, left : left + size] = as_rgb_uint8(region * (1 - alpha) + colour * alpha)
    return out
