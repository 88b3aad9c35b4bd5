"""The image modality's report view: one sample of an image method, original, marked and attacked.

For the method's first marked sample it shows thumbnails of the original, the marked
image and the marked image after each attack at its strongest strength that keeps the
image size (the main families first: compression, crop, filter; by the attacks'
``family`` tags), each with the p-value and verdict its cell stored, and a heatmap of
|marked - original| so readers see where the mark lives. Attacked images are replayed
(see :mod:`wmbench.report.examples`); the numbers on them are the stored ones.

Thumbnails are small JPEGs (the heatmap a palette PNG) embedded as ``data:`` URIs:
the report stays one file, allowed by its CSP (``img-src data:``). A method's images
must fit in ``IMAGE_BUDGET`` bytes: the JPEG quality steps down, then the last
families are left out (with a note) until they do.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pathlib import Path
from typing import TYPE_CHECKING

from wmbench.api import render_template
from wmbench.types import ExampleMissing

if TYPE_CHECKING:
    from wmbench.report.examples import MethodExample
    from wmbench.suite import AttackConfig

NONE_ATTACK = "none"
THUMB_WIDTH = 160
IMAGE_BUDGET = 150_000  # bytes of data: URIs per method, base64 included
# Families shown first (the first same-size attack of each), kept last when over budget.
MAIN_FAMILIES = ("compression", "crop", "filter")
_QUALITIES = (80, 70, 60, 50)
# Perceptually ordered ramp (black, purple, red, orange, pale yellow), like matplotlib's magma.
_RAMP = ((0.0, (0, 0, 4)), (0.25, (81, 18, 124)), (0.5, (183, 55, 121)), (0.75, (252, 137, 97)),
         (1.0, (252, 253, 191)))


@dataclass(frozen=True)
class Thumb:
    kind: str  # "original" | "marked" | "attacked"
    caption: str
    uri: str
    width: int
    height: int
    attack: str = ""  # the attack's label ("none" for original and marked)
    strength: Any = None
    strength_index: int | None = None
    p_value: float | None = None  # from the store
    detected: bool | None = None
    detail: str = ""  # bits matched, PSNR
    title: str = ""


@dataclass(frozen=True)
class Heatmap:
    uri: str
    width: int
    height: int
    full: float  # |difference| (grey levels, block mean) drawn at full colour
    peak: int  # largest per-pixel |difference|
    mean: float


@dataclass(frozen=True)
class Gallery:
    sample: str = ""
    thumbs: tuple[Thumb, ...] = ()
    heatmap: Heatmap | None = None
    notes: tuple[str, ...] = ()
    image_bytes: int = 0  # of the data: URIs
    quality: int | None = None  # JPEG quality of the thumbnails
    first: bool = False  # the first gallery of the page carries the stylesheet
    alpha: float = 0.01  # the run's detection threshold, for the badges' legend

    def html(self) -> Any:
        return render_template(Path(__file__).parent / "templates", "gallery.html", view=self, alpha=self.alpha)


def p_text(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.2g}"


def thumbnail(image: np.ndarray, width: int = THUMB_WIDTH) -> Image.Image:
    h, w = image.shape[:2]
    size = (min(width, w), max(1, round(h * min(width, w) / w)))
    return Image.fromarray(image).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def data_uri(image: Image.Image, fmt: str, **save: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def heatmap(original: np.ndarray, marked: np.ndarray, width: int = THUMB_WIDTH) -> Heatmap:
    """|marked - original| (largest over the colour channels), averaged over the pixels
    behind each thumbnail pixel, on a colour ramp that reaches its top at the 99.5th
    percentile: the mark's *where*, amplified (the factor is in the caption)."""
    diff = np.abs(marked.astype(np.int16) - original.astype(np.int16)).max(axis=2)
    h, w = diff.shape
    size = (min(width, w), max(1, round(h * min(width, w) / w)))
    blocks = np.asarray(Image.fromarray(diff.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX))
    full = max(float(np.percentile(blocks, 99.5)), 0.25)
    index = np.clip(np.rint(blocks / full * 255), 0, 255).astype(np.uint8)
    image = Image.fromarray(index, mode="P")
    image.putpalette(_palette())
    return Heatmap(data_uri(image, "PNG", optimize=True), size[0], size[1], full, int(diff.max()), float(diff.mean()))


def _palette() -> list[int]:
    x = np.linspace(0, 1, 256)
    stops = [s for s, _ in _RAMP]
    channels = [np.interp(x, stops, [c[k] for _, c in _RAMP]) for k in range(3)]
    return np.rint(np.stack(channels, axis=1)).astype(np.uint8).ravel().tolist()


def _family(example: "MethodExample", attack: "AttackConfig") -> str:
    return str(example.attack_tags(attack).get("family", ""))


def _ordered(example: "MethodExample", attacks: list["AttackConfig"]) -> list["AttackConfig"]:
    main = {name: i for i, name in enumerate(MAIN_FAMILIES)}
    return sorted(attacks, key=lambda a: main.get(_family(example, a), len(main)))  # stable: suite order otherwise


def _strongest_same_size(example: "MethodExample", marked: np.ndarray, attack: "AttackConfig",
                         notes: list[str]) -> tuple[int, np.ndarray] | bool:
    """The strongest strength whose attacked image keeps the size, replayed; else True when
    every usable strength changed the size, False when there is nothing to show."""
    usable = example.usable(attack)
    for i in usable:
        try:
            out = example.attacked(marked, attack, i)
        except Exception as exc:
            notes.append(f"{attack.label}: could not be run again here ({type(exc).__name__}: {exc})")
            return False
        if out.shape == marked.shape:
            return i, out
    return bool(usable)


def build_gallery(example: "MethodExample") -> Gallery:
    notes: list[str] = []
    images: list[tuple[dict[str, Any], np.ndarray]] = []  # (Thumb fields but the image, full image)
    original = marked = None
    try:
        original = example.original()
        images.append((_fields(example, "original", "original", NONE_ATTACK, None, 0, marked=False), original))
    except ExampleMissing as exc:
        notes.append(f"No original and no heatmap: {exc}.")
    try:
        marked = example.marked()
        images.append((_fields(example, "marked", "marked", NONE_ATTACK, None, 0), marked))
    except ExampleMissing as exc:
        notes.append(f"No marked or attacked image: {exc}.")
    resized: list[str] = []
    main: set[str] = set()  # the first attack shown of each main family
    main_families: set[str] = set()
    if marked is not None:
        for attack in _ordered(example, example.attacks()):
            found = _strongest_same_size(example, marked, attack, notes)
            if isinstance(found, bool):
                if found:
                    resized.append(attack.label)
                continue
            i, attacked = found
            family = _family(example, attack)
            if family in MAIN_FAMILIES and family not in main_families:
                main_families.add(family)
                main.add(attack.label)
            caption = f"{attack.label} {_strength(attack.strengths[i])}"
            images.append((_fields(example, "attacked", caption, attack.label, attack.strengths[i], i), attacked))
    if resized:
        notes.append(f"Not shown: {', '.join(resized)} (every strength changes the image size).")
    heat = None
    if original is not None and marked is not None:
        if original.shape == marked.shape:
            heat = heatmap(original, marked)
        else:
            notes.append("No heatmap: the marked image and the original differ in size.")
    thumbs, quality, dropped = _fit([(fields, thumbnail(image)) for fields, image in images],
                                    IMAGE_BUDGET - (len(heat.uri) if heat else 0), main)
    if dropped:
        notes.append(f"Left out to keep the report small: {', '.join(dropped)}.")
    size = sum(len(t.uri) for t in thumbs) + (len(heat.uri) if heat else 0)
    return Gallery(example.sample.id, tuple(thumbs), heat, tuple(notes), size, quality, alpha=example.alpha)


def _fit(items: list[tuple[dict[str, Any], Image.Image]], budget: int,
         main: set[str]) -> tuple[list[Thumb], int | None, list[str]]:
    """JPEG thumbnails within ``budget`` bytes: lower quality first, then fewer attacks."""
    if not items:
        return [], None, []
    for quality in _QUALITIES:
        uris = [data_uri(img, "JPEG", quality=quality, optimize=True) for _, img in items]
        if sum(map(len, uris)) <= budget:
            break
    dropped = []
    while sum(map(len, uris)) > budget:
        # the last attacked thumbnail that is not a main family (then the last one at all)
        attacked = [k for k, (f, _) in enumerate(items) if f["kind"] == "attacked"]
        if not attacked:
            break
        k = next((k for k in reversed(attacked) if items[k][0]["attack"] not in main), attacked[-1])
        dropped.insert(0, items[k][0]["caption"])
        del items[k], uris[k]
    thumbs = [Thumb(uri=uri, width=img.width, height=img.height, **fields) for (fields, img), uri in zip(items, uris)]
    return thumbs, quality, dropped


def _fields(example: "MethodExample", kind: str, caption: str, attack: str, strength: Any, index: int,
            marked: bool = True) -> dict[str, Any]:
    r = example.record(attack, index, marked)
    detail = []
    if r is not None and r.bits_matched is not None and r.bits_total:
        detail.append(f"{r.bits_matched}/{r.bits_total} bits")
    psnr = r.metric("psnr") if r is not None else None
    if psnr is not None and kind != "original":
        detail.append("PSNR ∞" if psnr == float("inf") else f"PSNR {psnr:.1f} dB")
    what = {"original": "the unmarked original, detected with the key (a negative)",
            "marked": "the marked image, no attack"}.get(kind, f"the marked image after {caption}")
    title = f"{what}: p = {p_text(r.p_value)}" if r is not None else f"{what}: no stored cell"
    return dict(kind=kind, caption=caption, attack=attack, strength=strength,
                strength_index=index if kind == "attacked" else None,
                p_value=r.p_value if r is not None else None, detected=r.detected if r is not None else None,
                detail=", ".join(detail), title=title)


def _strength(value: Any) -> str:
    from wmbench.report.formatting import format_strength

    return format_strength(value)
