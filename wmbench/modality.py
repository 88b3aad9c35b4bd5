"""What differs between images and text on the data path, in one place.

The runner treats items as opaque; for each modality this module says how to read a
sample, how to keep an item in the run cache, what an attack must return, and which
quality metrics a cell records. Adding a modality means adding one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

# (reference, attacked, options) -> metrics. Options come from the suite (the text LM);
# a string value is a note (why a metric is missing), kept with the cell, not a number.
QualityFn = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Modality:
    name: str
    cache_suffix: str
    load: Callable[[str], Any]  # sample source -> item; raises SampleError
    save: Callable[[Any, Path], None]  # atomic write into the run cache
    problem: Callable[[Any], str | None]  # why an attack's output breaks the contract, or None
    quality: QualityFn  # (reference, attacked, options=None) -> metrics


def _image_problem(item: Any) -> str | None:
    if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 3 and item.shape[2] == 3:
        return None
    got = f"{type(item).__name__} {getattr(item, 'dtype', '')} {getattr(item, 'shape', '')}".strip()
    return f"returned {got}, not uint8 HxWx3"


def _image_quality(reference: Any, attacked: Any, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Against the clean original: the damage of embedding and attack together."""
    from wmbench.modalities.image.quality import psnr, ssim

    return {"psnr": psnr(reference, attacked), "ssim": ssim(reference, attacked)}


def _image() -> Modality:
    from wmbench.samples import load_image, save_png

    return Modality("image", ".png", load_image, save_png, _image_problem, _image_quality)


def _text_problem(item: Any) -> str | None:
    return None if isinstance(item, str) else f"returned {type(item).__name__}, not str"


def _text_quality(reference: Any, attacked: Any, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Perplexity under the suite's LM (``options["lm"]``); similarity to the reference.

    A metric that cannot be measured stays empty and the cell says why in a
    ``*_missing`` note (never an invented value).
    """
    from wmbench.modalities.text.quality import perplexity, similarity

    options = options or {}
    if options.get("perplexity", True):
        score = lambda: perplexity(attacked, options.get("lm", "ngram"))  # noqa: E731
    else:
        score = lambda: (None, 'not measured: the suite scores perplexity on unattacked texts only '  # noqa: E731
                               '([text] perplexity = "unattacked")')
    metrics: dict[str, Any] = {}
    for name, measure in (("perplexity", score),
                          ("similarity", lambda: similarity(reference, attacked))):
        value, reason = measure()
        metrics[name] = value
        if reason:
            metrics[f"{name}_missing"] = reason
    return metrics


def _text() -> Modality:
    from wmbench.modalities.text.io import load_text, save_text

    return Modality("text", ".txt", load_text, save_text, _text_problem, _text_quality)


_FACTORIES: dict[str, Callable[[], Modality]] = {"image": _image, "text": _text}
_cache: dict[str, Modality] = {}


def modality(name: str) -> Modality:
    if name not in _cache:
        if name not in _FACTORIES:
            raise KeyError(f"unknown modality {name!r}; valid: {', '.join(_FACTORIES)}")
        _cache[name] = _FACTORIES[name]()
    return _cache[name]
