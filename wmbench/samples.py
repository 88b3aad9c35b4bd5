"""Sample discovery (cheap, in the main process) and image loading (in the workers).

Discovery only lists files, so a corrupt image does not stop a suite: loading happens
in the cell that needs it, and its error is recorded on that sample's cells.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from wmbench.api import Sample
from wmbench.errors import SampleError, SuiteError

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
        path = (base_dir / source).resolve()
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise SuiteError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        else:
            raise SuiteError(f"{path}: folder or file not found")
        for f in files:
            samples.append(Sample(id=f.name, modality="image", source=str(f)))
    return _unique_ids(samples)


TEXT_SUFFIXES = (".txt",)


def discover_texts(sources: tuple[str, ...], base_dir: Path) -> list[Sample]:
    """Human texts: ``builtin:texts`` (samples/texts/human) and .txt files or folders."""
    from wmbench.modalities.text.corpus import samples_dir

    samples: list[Sample] = []
    for source in sources:
        folder = samples_dir() / "human" if source == "builtin:texts" else (base_dir / source).resolve()
        for f in _text_files(folder):
            samples.append(Sample(id=f.name, modality="text", source=str(f)))
    return _unique_ids(samples)


def discover_prompts(sources: tuple[str, ...], base_dir: Path) -> list[Sample]:
    """Prompts: one per line of a .txt file, or one per .txt file of a folder."""
    from wmbench.modalities.text.corpus import samples_dir

    samples: list[Sample] = []
    for source in sources:
        path = samples_dir() / "prompts.txt" if source == "builtin:prompts" else (base_dir / source).resolve()
        if path.is_dir():
            for f in _text_files(path):
                samples.append(Sample(id=f.name, modality="text", source=str(f), role="prompt"))
            continue
        try:
            lines = path.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SuiteError(f"{path}: cannot read prompts: {exc}") from None
        for n, line in enumerate(lines, start=1):
            if line.strip():
                samples.append(Sample(id=f"{path.stem}:{n}", modality="text", source=f"{path}#L{n}", role="prompt"))
    return _unique_ids(samples)


def _text_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SuiteError(f"{path}: folder or file not found")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in TEXT_SUFFIXES and p.is_file())
    if not files:
        raise SuiteError(f"{path}: no .txt files in this folder")
    return files


def _unique_ids(samples: list[Sample]) -> list[Sample]:
    seen: dict[str, int] = {}
    out = []
    for s in samples:
        if s.source in {o.source for o in out}:
            continue  # the same file listed twice counts once
        n = seen.get(s.id, 0)
        seen[s.id] = n + 1
        out.append(s if n == 0 else Sample(id=f"{s.id}#{n + 1}", modality=s.modality, source=s.source,
                                           role=s.role))
    return out


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
