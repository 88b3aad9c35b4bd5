"""Images on disk: the bundled photos, discovery of image files, decoding, the cache format.

Discovery only lists files, so a corrupt image does not stop a suite: loading happens
in the cell that needs it, and its error is recorded on that sample's cells.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from wmbench.errors import SampleError
from wmbench.samples import files_in, unique_ids
from wmbench.types import Sample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

# Photos bundled inside scikit-image's wheel (no download): colour and grey scenes of
# different sizes and textures. Grey ones exercise the grayscale -> RGB path.
BUILTIN_IMAGES: tuple[str, ...] = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "ihc.png",
    "camera.png",
    "coins.png",
)

# Larger than any photo a benchmark needs, small enough to refuse decompression bombs
# before they take the machine's memory (Pillow's own default warns at ~89 MP).
MAX_IMAGE_PIXELS = 40_000_000


def skimage_data_dir() -> Path:
    import skimage

    return Path(os.path.dirname(skimage.__file__)) / "data"


def discover_images(sources: tuple[str, ...], base_dir: Path) -> list[Sample]:
    """Expand ``builtin:images``, folders and files into samples with unique ids."""
    samples: list[Sample] = []
    for source in sources:
        if source == "builtin:images":
            data = skimage_data_dir()
            for name in BUILTIN_IMAGES:
                samples.append(Sample(id=Path(name).stem, modality="image", source=str(data / name)))
            continue
        for f in files_in((base_dir / source).resolve(), IMAGE_SUFFIXES, "images"):
            samples.append(Sample(id=f.name, modality="image", source=str(f)))
    return unique_ids(samples)


def load_image(path: str) -> np.ndarray:
    """Decode any common image to ``uint8`` RGB, or raise :class:`SampleError`.

    Grey, palette, RGBA (alpha dropped: marks live in colour channels) and 16-bit
    images are converted; truncated files, non-images and images above
    ``MAX_IMAGE_PIXELS`` are refused with a one-line reason.
    """
    name = Path(path).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
            try:
                with Image.open(path) as im:
                    im.load()
                    return _to_rgb8(im)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SampleError(f"{name}: refused as a possible decompression bomb "
                          f"(more than {MAX_IMAGE_PIXELS:,} pixels)") from None
    except FileNotFoundError:
        raise SampleError(f"{name}: file not found: {path}") from None
    except Image.UnidentifiedImageError:
        raise SampleError(f"{name}: not a readable image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise SampleError(f"{name}: corrupt or truncated image: {exc}") from None


def _to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGBA").convert("RGB") if im.mode == "P" else im.convert("RGB")
    arr = np.asarray(im, dtype=np.uint8)
    return np.ascontiguousarray(arr)


def save_png(image: np.ndarray, path: Path) -> None:
    """Lossless, atomic write (rename) so a killed worker never leaves half a file."""
    tmp = path.with_suffix(f".tmp{os.getpid()}.png")
    Image.fromarray(image).save(tmp, format="PNG", compress_level=0)  # a cache: speed over size
    os.replace(tmp, path)
