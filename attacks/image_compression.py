"""Lossy re-encoding attacks: the image goes through an encoder and back, in memory.

Re-compression is the most common thing that happens to a published photo (upload
pipelines, messengers, screenshots saved as JPEG), so a mark that does not survive
it is of little practical use. Both codecs run through Pillow with its default
settings apart from the quality, so results match what an ordinary tool produces.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from wmbench.api import attack


def _round_trip(image: np.ndarray, fmt: str, **options: object) -> np.ndarray:
    """Encode ``image`` with Pillow as ``fmt`` into memory and decode it back to RGB.

    Encoding only reads the array and the decoded pixels are a fresh array, so the
    input is never touched.
    """
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format=fmt, **options)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()


@attack("jpeg", modality="image", tags={"family": "compression"}, strengths=[90, 70, 50, 30], unit="JPEG quality")
def jpeg(image: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG re-compression at the given quality (lower is stronger).

    Pillow's defaults apply otherwise, including 4:2:0 chroma subsampling, which is
    what most encoders in the wild do and which halves the colour resolution: marks
    carried in the chroma channels feel that even at quality 90. ``rng`` is unused;
    the codec is deterministic.
    """
    return _round_trip(image, "JPEG", quality=int(strength))


@attack("webp", modality="image", tags={"family": "compression"}, strengths=[90, 70, 50, 30], unit="WebP quality")
def webp(image: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """Lossy WebP re-compression at the given quality (lower is stronger).

    WebP predicts blocks from their neighbours and quantises the residual, so it
    damages marks differently from JPEG's fixed 8x8 DCT grid; both are worth testing.
    ``rng`` is unused; the codec is deterministic.
    """
    return _round_trip(image, "WEBP", quality=int(strength), lossless=False)
