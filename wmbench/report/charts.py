"""Chart geometry for the report: robustness curves, TPR against damage, ROC.

Geometry is computed here in Python; the SVG elements are written by the Jinja
template, so every label goes through autoescaping like any other text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from wmbench.manifest import ModalityInfo
from wmbench.report.aggregate import NONE_ATTACK, Row, failure
from wmbench.report.formatting import format_rate, format_strength
from wmbench.stats import Rate, roc
from wmbench.store import Record
from wmbench.types import NegativePools

# -- chart geometry ---------------------------------------------------------------

@dataclass(frozen=True)
class Tick:
    pos: float
    label: str
    title: str  # full text for the tooltip when the label is shortened


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    top: float  # pixel y of the CI's upper end (SVG y grows downwards)
    bottom: float  # pixel y of the CI's lower end
    tip: str
    whisker: bool = False  # draw the CI as a whisker (no band around this point)


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # class of the series: colour and dash come from the stylesheet
    lines: tuple[str, ...]  # polyline point lists; a gap (no usable cell) splits the line
    bands: tuple[str, ...]  # CI polygons, one per line with two or more points
    markers: tuple[Marker, ...]


@dataclass(frozen=True)
class Frame:
    """Geometry shared by every chart: SVG size, plot edges, axis ticks."""

    width: int
    height: int
    left: int
    top: int
    right: int  # x of the plot's right edge
    bottom: int  # y of the plot's bottom edge
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]


@dataclass(frozen=True)
class Chart(Frame):
    title: str = field(kw_only=True)
    x_title: str = field(kw_only=True)  # "strength: JPEG quality (weak → strong)"
    series: tuple[Series, ...] = field(kw_only=True)
    alpha_y: float = field(kw_only=True)
    alpha_label: str = field(kw_only=True)


_W, _H = 360, 200
_PLOT = {"left": 40, "top": 12, "right": _W - 12, "bottom": _H - 42}
_MAX_TICK_CHARS = 8
_DODGE = 2.5  # px between the two FPR series of a generation mark


def robustness_chart(attack: str, rows: Sequence[Row], alpha: float, pools: NegativePools | None = None,
                     unit: str = "") -> Chart:
    """TPR and measured FPR against strength for one attack, weak to strong left to right.

    Strengths are placed evenly by their index, not their value: strengths of
    different attacks have unrelated units and are often not linear (JPEG quality).
    With ``pools`` (a generation mark checked on human texts too) the FPR is drawn
    once per pool of negatives.
    """
    left, top, right, bottom = _PLOT["left"], _PLOT["top"], _PLOT["right"], _PLOT["bottom"]
    xs = _even_positions(len(rows), left, right)

    def y(value: float) -> float:
        return round(bottom - value * (bottom - top), 1)

    x_ticks = tuple(Tick(x, _shorten(format_strength(r.strength)), format_strength(r.strength))
                    for x, r in zip(xs, rows))
    y_ticks = tuple(Tick(y(v), f"{v:g}", f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1))
    tpr = _series("TPR", "tpr", xs, [r.tpr for r in rows], y, rows, with_band=True, digits=2)
    if pools is None:
        fprs = (_series("FPR", "fpr", xs, [r.fpr for r in rows], y, rows, with_band=False, digits=3),)
    else:
        # Nudged apart so that two whiskers at the same strength do not hide each other.
        fprs = (_series(f"FPR {pools.paired}", "fpr", [x - _DODGE for x in xs], [r.fpr_paired for r in rows], y,
                        rows, with_band=False, digits=3),
                _series(f"FPR {pools.unpaired}", "fpr-alt", [x + _DODGE for x in xs], [r.fpr_unpaired for r in rows],
                        y, rows, with_band=False, digits=3))
    x_title = f"strength: {unit} (weak → strong)" if unit else "strength (weak → strong)"
    return Chart(_W, _H, left, top, right, bottom, x_ticks, y_ticks, title=attack, x_title=x_title,
                 series=(tpr, *fprs),
                 alpha_y=y(alpha), alpha_label=f"α = {alpha:g}")


@dataclass(frozen=True)
class QualityCurve:
    attack: str
    css: str  # "q0".."q7": colour from the stylesheet
    line: str  # polyline points, weak -> strong
    markers: tuple[Marker, ...]


@dataclass(frozen=True)
class QualityChart(Frame):
    """TPR against what the attack left of the item's quality, every attack in one plot.

    The question an attacker asks: how much damage must I do to erase the mark? A
    curve that falls to 0 near the right edge means the mark dies while the item is
    still nearly intact.
    """

    metric: str = field(kw_only=True)  # the modality's damage metric ("psnr", "similarity")
    item_word: str = field(kw_only=True)  # "image": what the attacker damaged
    axis_title: str = field(kw_only=True)
    curves: tuple[QualityCurve, ...] = field(kw_only=True)
    alpha_y: float = field(kw_only=True)
    alpha_label: str = field(kw_only=True)


_QW, _QH = 720, 300
QUALITY_COLOURS = 8


def _axis_step(low: float, high: float) -> float:
    """A round tick step giving about five to ten ticks over [low, high]."""
    span = max(high - low, 1e-9)
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0):
        if span / step <= 10:
            return step
    return 10 ** math.ceil(math.log10(span / 10))


def quality_chart(info: ModalityInfo, rows: Sequence[Row], alpha: float) -> QualityChart | None:
    """One curve per attack through (mean damage metric, TPR) at each strength; None without data."""
    spec = info.metric(info.damage_metric)
    if spec is None:
        return None
    metric = spec.name
    unit = f" ({spec.unit})" if spec.unit else ""
    axis_title = f"{spec.label}{unit} of the attacked marked {info.item_word}: {spec.reference}"
    attacks: dict[str, list[tuple[float, Row]]] = {}
    for r in rows:
        x = r.metric(metric).marked
        if r.attack != NONE_ATTACK and x is not None and math.isfinite(x) and r.tpr.n:
            attacks.setdefault(r.attack, []).append((x, r))
    if not attacks:
        return None
    xs = [x for points in attacks.values() for x, _ in points]
    step = max(_axis_step(min(xs), max(xs)), 10.0 ** -min(spec.digits, 2))
    low = math.floor(round(min(xs) / step, 9)) * step  # round: 0.3 / 0.1 is 2.9999999999999996
    high = max(math.ceil(round(max(xs) / step, 9)) * step, low + step)
    left, top, right, bottom = 48, 12, _QW - 14, _QH - 42

    def px(x: float) -> float:
        return round(left + (x - low) / (high - low) * (right - left), 1)

    def py(v: float) -> float:
        return round(bottom - v * (bottom - top), 1)

    curves = []
    for i, (attack, points) in enumerate(attacks.items()):
        markers = tuple(Marker(px(x), py(r.tpr.value), py(r.tpr.high), py(r.tpr.low),
                               f"{attack} {format_strength(r.strength)}: TPR {format_rate(r.tpr)}, "
                               f"{metric} {x:.3g}, n = {r.tpr.n}", whisker=True) for x, r in points)
        css = f"q{i % QUALITY_COLOURS}" + (" dashed" if (i // QUALITY_COLOURS) % 2 else "")
        curves.append(QualityCurve(attack, css, " ".join(f"{m.x},{m.y}" for m in markers),
                                   markers))
    count = int(round((high - low) / step))
    stride = max(1, math.ceil(count / 10))
    x_ticks = tuple(Tick(px(low + k * step), f"{low + k * step:g}", f"{low + k * step:g}")
                    for k in range(0, count + 1, stride))
    y_ticks = tuple(Tick(py(v), f"{v:g}", f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1))
    return QualityChart(_QW, _QH, left, top, right, bottom, x_ticks, y_ticks, metric=metric,
                        item_word=info.item_word, axis_title=axis_title,
                        curves=tuple(curves), alpha_y=py(alpha), alpha_label=f"α = {alpha:g}")


@dataclass(frozen=True)
class RocCurve:
    method: str
    css: str
    points: str  # polyline, a step curve
    auc: float
    n_pos: int
    n_neg: int


@dataclass(frozen=True)
class RocChart(Frame):
    """ROC of every method of a modality over all its cells (clean and attacked pooled).

    FPR runs on a log axis from 10^-3: the low-FPR end is where a deployed detector
    lives. An FPR of 0 sits on the left edge; with n negatives the curve cannot
    resolve FPRs below 1/n, so the left part of a curve over few negatives is flat.
    """

    curves: tuple[RocCurve, ...] = field(kw_only=True)
    target_x: float = field(kw_only=True)  # the 1 % FPR line


_ROC_MIN_FPR = 1e-3


def roc_chart(records: Sequence[Record], methods: Sequence[str]) -> RocChart | None:
    left, top, right, bottom = 48, 12, 440 - 14, 260 - 42

    def px(fpr: float) -> float:
        f = min(max(fpr, _ROC_MIN_FPR), 1.0)
        return round(left + (math.log10(f) - math.log10(_ROC_MIN_FPR)) / -math.log10(_ROC_MIN_FPR)
                     * (right - left), 1)

    def py(tpr: float) -> float:
        return round(bottom - tpr * (bottom - top), 1)

    curves = []
    for i, method in enumerate(methods):
        usable = [r for r in records if r.method == method and failure(r) is None]
        curve = roc([r.p_value for r in usable if r.marked], [r.p_value for r in usable if not r.marked],
                    bootstrap=0)
        if curve is None:
            continue
        steps = []
        for (f0, t0), (f1, t1) in zip(zip(curve.fpr, curve.tpr), zip(curve.fpr[1:], curve.tpr[1:])):
            steps += [f"{px(f0)},{py(t0)}", f"{px(f1)},{py(t0)}", f"{px(f1)},{py(t1)}"]
        curves.append(RocCurve(method, f"q{i % QUALITY_COLOURS}", " ".join(steps), curve.auc, curve.n_pos,
                               curve.n_neg))
    if not curves:
        return None
    x_ticks = tuple(Tick(px(f), label, label) for f, label in ((1e-3, "0.001"), (1e-2, "0.01"), (1e-1, "0.1"),
                                                               (1.0, "1")))
    y_ticks = tuple(Tick(py(v), f"{v:g}", f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1))
    return RocChart(440, 260, left, top, right, bottom, x_ticks, y_ticks, curves=tuple(curves), target_x=px(0.01))


def _even_positions(count: int, left: float, right: float) -> list[float]:
    if count == 1:
        return [(left + right) / 2]
    inset = 14  # keep the first and last markers off the axes
    step = (right - left - 2 * inset) / (count - 1)
    return [round(left + inset + i * step, 1) for i in range(count)]


def _series(name: str, css: str, xs: Sequence[float], rates: Sequence[Rate], y: Callable[[float], float],
            rows: Sequence[Row], *, with_band: bool, digits: int) -> Series:
    """One line with a marker per strength; the CI is a band around runs of points, else a whisker."""
    markers: list[Marker | None] = []
    for x, r, row in zip(xs, rates, rows):
        if r.n == 0:
            markers.append(None)  # every cell failed: no point, and the line breaks here
            continue
        tip = f"{row.attack} {format_strength(row.strength)}: {name} {format_rate(r, digits)}, n = {r.n}"
        markers.append(Marker(x, y(r.value), y(r.high), y(r.low), tip))
    segments = _segments(markers)
    lines = tuple(" ".join(f"{m.x},{m.y}" for m in seg) for seg in segments)
    banded = [seg for seg in segments if with_band and len(seg) > 1]
    in_band = {id(m) for seg in banded for m in seg}
    shown = tuple(replace(m, whisker=id(m) not in in_band) for seg in segments for m in seg)
    return Series(name, css, lines, tuple(_band(seg) for seg in banded), shown)


def _segments(markers: Sequence[Marker | None]) -> list[list[Marker]]:
    segments: list[list[Marker]] = [[]]
    for m in markers:
        if m is None:
            segments.append([])
        else:
            segments[-1].append(m)
    return [s for s in segments if s]


def _band(segment: Sequence[Marker]) -> str:
    upper = [f"{m.x},{m.top}" for m in segment]
    lower = [f"{m.x},{m.bottom}" for m in reversed(segment)]
    return " ".join(upper + lower)


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_TICK_CHARS else text[: _MAX_TICK_CHARS - 1] + "…"


