"""The image modality as the core sees it: one :class:`~wmbench.types.Modality` object.

Registered through the ``wmbench.modalities`` entry point exactly as a third-party
modality would be; everything image-specific the runner, store, report and
``check-plugin`` need is declared here and nowhere else.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from wmbench.types import EdgeCase, MetricSpec, Modality, NegativePools, SampleKind

ALIGNED = ("the clean original, put through the attack's geometric steps (a flip compares with the flipped "
           "original)")

METRICS = (
    MetricSpec(
        "psnr", "PSNR", unit="dB", higher_is_better=True, reference=ALIGNED,
        acceptable=30.0, acceptable_source="common engineering rule: below ~30 dB a change is plainly visible",
        description="peak signal-to-noise ratio of the item against the clean original", digits=1),
    MetricSpec(
        "ssim", "SSIM", higher_is_better=True, reference=ALIGNED,
        description="structural similarity (Wang et al. 2004), mean over colour channels", digits=4,
        show_unmarked=False),
    MetricSpec(
        "kept", "Content kept", higher_is_better=True,
        reference="the original's pixels: the share the attack declares it keeps (a crop keeps strength², "
                  "a rotation what stays on the canvas, an occlusion what is not covered)",
        description="fraction of the original's content still in the item", digits=2, show_unmarked=False,
        judges_damage=False,  # declared by the attack, not measured on its output (check-plugin has none)
        acceptable=0.8, acceptable_source="wmbench convention after MarkMyWords (Piet et al. 2023), which keeps "
                                          "attacks at >= 80 % of the unattacked quality"),
)

# Tiny images for check-plugin's edge cases: a 1x1 pixel and an 8x8 tile, below any real
# photo, so an attack's edge cases (kernels larger than the image) show up.
TINY_SHAPES: tuple[tuple[int, int, int], ...] = ((1, 1, 3), (8, 8, 3))


def problem(item: Any) -> str | None:
    if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 3 and item.shape[2] == 3:
        return None
    got = f"{type(item).__name__} {getattr(item, 'dtype', '')} {getattr(item, 'shape', '')}".strip()
    return f"returned {got}, not uint8 HxWx3"


def measure(reference: Any, item: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Against the clean original, aligned by the core with the attack's geometric steps:
    the damage of embedding and attack together; ``kept`` as the attack declares it."""
    from wmbench.modalities.image.quality import psnr, ssim

    return {"psnr": psnr(reference, item), "ssim": ssim(reference, item), "kept": options.get("kept")}


def _tiny_image(shape: tuple[int, int, int]) -> np.ndarray:
    """A small gradient (not flat, so an attack has something to change)."""
    return (np.arange(math.prod(shape), dtype=np.int64).reshape(shape) * 37 % 256).astype(np.uint8)


def edge_cases() -> list[EdgeCase]:
    return [EdgeCase(f"a {s[0]}x{s[1]} image", _tiny_image(s), (ValueError,)) for s in TINY_SHAPES]


def _discover(sources: tuple[str, ...], base_dir: Any) -> list[Any]:
    from wmbench.modalities.image.io import discover_images

    return discover_images(sources, base_dir)


def _load(source: str) -> Any:
    from wmbench.modalities.image.io import load_image

    return load_image(source)


def _save(item: Any, path: Any) -> None:
    from wmbench.modalities.image.io import save_png

    save_png(item, path)


def _viewer(example: Any) -> Any:
    from wmbench.modalities.image.view import build_gallery

    return build_gallery(example)


def modality() -> Modality:
    return Modality(
        name="image", title="Images", item_word="image", contract="a uint8 HxWx3 array",
        cache_suffix=".png", load=_load, save=_save, problem=problem, metrics=METRICS, measure=measure,
        sample_kinds=(SampleKind("images", "item", "builtin:images", _discover),),
        damage_metric="psnr",
        pools=NegativePools(unpaired="real images", unpaired_short="real"),
        edge_cases=edge_cases, viewer=_viewer,
        description="RGB photos (uint8 HxWx3); built-in: 8 photos bundled in scikit-image",
    )
