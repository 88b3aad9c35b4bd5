"""The HTML report: one self-contained file, readable offline and safe to open.

Self-contained means no URL at all: CSS and the small sort script are inline, the
charts are inline SVG drawn from numbers computed here. A Content-Security-Policy
in the page forbids every fetch and allows only our own script (by hash), so even
a sample named ``<script>...`` could not run code if escaping ever slipped.

Chart geometry is computed in Python but the SVG elements are written by the
Jinja template, so every label goes through autoescaping like any other text.

The page is grouped by modality (images, then text, then any other): each has its
own Overview table, and every table shows only the quality columns that hold a
value for it (PSNR/SSIM/bits for images, perplexity/similarity/tokens for text).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from wmbench.report.aggregate import (
    NONE_ATTACK,
    MethodSummary,
    Row,
    failure,
    failures,
    fpr_exceeds_alpha,
    skips,
    summarize,
    summarize_methods,
)
from wmbench.report.compare import compare_runs
from wmbench.report.examples import attach_examples
from wmbench.report.verdict import build_verdict
from wmbench.stats import Rate, roc
from wmbench.store import Record, Store

REPORT_NAME = "report.html"
DEFAULT_ALPHA = 0.01  # only used when a store has no alpha in its metadata
MAX_FAILED_CELLS_SHOWN = 50  # per error message: a run where everything fails stays small
TEMPLATES = Path(__file__).parent / "templates"

# Click a header to sort; click again to reverse. Cells carry their sort key in data-v.
_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th) {
    th.addEventListener("click", function () {
      var col = th.cellIndex, body = table.tBodies[0];
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var key = function (tr) {
        var v = tr.cells[col].getAttribute("data-v");
        var n = parseFloat(v);
        return isNaN(n) ? (v || "") : n;
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (tr) { body.appendChild(tr); });
    });
  });
});
"""


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
    series: tuple[Series, ...] = field(kw_only=True)
    alpha_y: float = field(kw_only=True)
    alpha_label: str = field(kw_only=True)


_W, _H = 360, 200
_PLOT = {"left": 40, "top": 12, "right": _W - 12, "bottom": _H - 42}
_MAX_TICK_CHARS = 8
_DODGE = 2.5  # px between the two FPR series of a generation mark


@dataclass(frozen=True)
class Pools:
    """Words for the two pools of negatives of a generation mark (see aggregate's module doc)."""

    paired: str  # the unmarked twins of the marked items
    paired_short: str
    unpaired: str  # samples only ever checked unmarked
    unpaired_short: str
    sources: str  # what the marked items were made from


_POOLS = {
    "text": Pools("unmarked generations", "unmarked gen.", "human texts", "human", "prompts"),
    "image": Pools("unmarked generations", "unmarked gen.", "real images", "real", "prompts"),
}
_OTHER_POOLS = Pools("unmarked generations", "unmarked gen.", "other samples", "other", "prompts")
MODALITY_TITLES = {"image": "Images", "text": "Text"}
_MODALITY_ORDER = ("image", "text")  # others follow in first-seen order


def negative_pools(modality: str) -> Pools:
    return _POOLS.get(modality, _OTHER_POOLS)


def robustness_chart(attack: str, rows: Sequence[Row], alpha: float, pools: Pools | None = None) -> Chart:
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
    return Chart(_W, _H, left, top, right, bottom, x_ticks, y_ticks, title=attack, series=(tpr, *fprs),
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

    metric: str = field(kw_only=True)  # "similarity" | "psnr"
    axis_title: str = field(kw_only=True)
    curves: tuple[QualityCurve, ...] = field(kw_only=True)
    alpha_y: float = field(kw_only=True)
    alpha_label: str = field(kw_only=True)


_QUALITY_AXES = {
    "text": ("similarity", "semantic similarity of the attacked marked text to its reference", lambda r: r.mean_similarity),
    "image": ("psnr", "PSNR of the attacked marked image vs the original (dB)", lambda r: r.mean_psnr),
}
_QW, _QH = 720, 300
QUALITY_COLOURS = 8


def quality_chart(modality: str, rows: Sequence[Row], alpha: float) -> QualityChart | None:
    """One curve per attack through (mean quality, TPR) at each strength; None without data."""
    if modality not in _QUALITY_AXES:
        return None
    metric, axis_title, value = _QUALITY_AXES[modality]
    attacks: dict[str, list[tuple[float, Row]]] = {}
    for r in rows:
        x = value(r)
        if r.attack != NONE_ATTACK and x is not None and math.isfinite(x) and r.tpr.n:
            attacks.setdefault(r.attack, []).append((x, r))
    if not attacks:
        return None
    xs = [x for points in attacks.values() for x, _ in points]
    step = 0.1 if metric == "similarity" else 5.0
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
    return QualityChart(_QW, _QH, left, top, right, bottom, x_ticks, y_ticks, metric=metric, axis_title=axis_title,
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


# -- value formatting (also registered as template filters) -------------------------

def format_strength(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def format_rate(r: Rate, digits: int = 2) -> str:
    if not r.n:
        return "n/a"
    return f"{r.value:.{digits}f} [{r.low:.{digits}f}, {r.high:.{digits}f}]"


def format_number(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}f}"


def format_duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "—"
    total = int(round(seconds))
    if total < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_time(epoch: Any) -> str:
    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    return "—" if epoch is None else str(epoch)


def psnr_class(value: float | None) -> str:
    """Colour band for a PSNR: above ~40 dB a change is invisible, below ~30 dB it is obvious."""
    if value is None or math.isnan(value):
        return ""
    if value >= 40:
        return "q-good"
    return "q-fair" if value >= 30 else "q-poor"


def sort_value(value: float | None) -> str:
    """data-v for a numeric cell: missing values sort before every number."""
    if value is None or math.isnan(value):
        return "-1e308"
    if math.isinf(value):
        return "1e308" if value > 0 else "-1e308"
    return repr(value)


# -- page model ---------------------------------------------------------------------

# Optional columns of a method's table: shown only when some row has a value.
_ROW_COLUMNS: dict[str, Callable[[Row], Any]] = {
    "psnr": lambda r: r.mean_psnr,
    "ssim": lambda r: r.mean_ssim,
    "psnr_unmarked": lambda r: r.mean_psnr_unmarked,
    "bits": lambda r: r.mean_bits,
    "perplexity": lambda r: r.mean_perplexity,
    "perplexity_unmarked": lambda r: r.mean_perplexity_unmarked,
    "perplexity_unpaired": lambda r: r.mean_perplexity_unpaired,
    "similarity": lambda r: r.mean_similarity,
    "similarity_unmarked": lambda r: r.mean_similarity_unmarked,
    "tokens": lambda r: r.mean_tokens,
    "substitutable": lambda r: r.mean_substitutable,
    "refused": lambda r: r.refused or None,
    "skipped": lambda r: r.skipped or None,
}

# Optional columns of a modality's Overview table: shown only when some method has a value.
_OVERVIEW_COLUMNS: dict[str, Callable[[MethodSummary], Any]] = {
    "psnr": lambda s: s.embed_psnr,
    "ssim": lambda s: s.embed_ssim,
    "perplexity": lambda s: s.embed_perplexity,
    "perplexity_unmarked": lambda s: s.clean_perplexity_unmarked,
    "perplexity_ratio": lambda s: s.perplexity_ratio,
    "similarity": lambda s: similarity_to_original(s),
    "tokens": lambda s: s.clean_tokens,
    "tokens_needed": lambda s: s.tokens_needed,
    "unpaired": lambda s: s.unpaired_samples or None,
}


def _present(getters: dict[str, Callable[[Any], Any]], items: Sequence[Any]) -> frozenset[str]:
    return frozenset(name for name, get in getters.items() if any(get(i) is not None for i in items))


def similarity_to_original(summary: MethodSummary) -> float | None:
    """The Overview's semantic marking cost: similarity of the marked text to the original.

    Only a mark added to an existing text has an original to compare with; a
    generation mark's similarity is measured against its own unattacked output, 1 on
    the clean row by definition, so it tells nothing about the marking cost.
    """
    return None if summary.has_unpaired else summary.embed_similarity


@dataclass(frozen=True)
class MethodView:
    summary: MethodSummary
    rows: tuple[Row, ...]
    charts: tuple[Chart, ...]
    columns: frozenset[str]  # optional columns with a value (see _ROW_COLUMNS), plus "split"
    anchor: str
    pools: Pools
    quality: QualityChart | None = None
    gallery: Any = None  # wmbench.report.gallery.Gallery: image methods
    textview: Any = None  # wmbench.report.textview.TextView: text methods

    @property
    def has_bits(self) -> bool:
        return "bits" in self.columns

    @property
    def split(self) -> bool:
        """FPR is shown per pool of negatives: unmarked generations and human texts."""
        return "split" in self.columns


@dataclass(frozen=True)
class ModalityGroup:
    """The methods of one modality: one Overview table, then one section per method."""

    modality: str
    title: str
    anchor: str
    methods: tuple[MethodView, ...]
    columns: frozenset[str]  # optional Overview columns with a value (see _OVERVIEW_COLUMNS)
    pools: Pools
    samples: int  # distinct samples of this modality in the run


def _modality_order(summaries: Sequence[MethodSummary]) -> list[str]:
    seen = list(dict.fromkeys(s.modality for s in summaries))
    return [m for m in _MODALITY_ORDER if m in seen] + [m for m in seen if m not in _MODALITY_ORDER]


def method_views(rows: Sequence[Row], summaries: Sequence[MethodSummary], alpha: float) -> list[MethodView]:
    """Group the rows by method and draw one chart per attack (the clean row is not an attack).

    Methods come grouped by modality (images, text, others), first-seen order within.
    """
    order = _modality_order(summaries)
    ordered = sorted(summaries, key=lambda s: order.index(s.modality))  # stable: keeps first-seen order
    views = []
    for i, summary in enumerate(ordered):
        mine = tuple(r for r in rows if (r.modality, r.method) == (summary.modality, summary.method))
        pools = negative_pools(summary.modality)
        split = summary.has_unpaired
        attacks: dict[str, list[Row]] = {}
        for r in mine:
            if r.attack != NONE_ATTACK:
                attacks.setdefault(r.attack, []).append(r)
        charts = tuple(robustness_chart(a, rs, alpha, pools if split else None) for a, rs in attacks.items())
        columns = _present(_ROW_COLUMNS, mine) | ({"split"} if split else set())
        views.append(MethodView(summary, mine, charts, columns, anchor=f"method-{i}", pools=pools,
                                quality=quality_chart(summary.modality, mine, alpha)))
    return views


def modality_groups(views: Sequence[MethodView], records: Sequence[Record]) -> list[ModalityGroup]:
    """One group per modality, in the order of ``views``."""
    groups: dict[str, list[MethodView]] = {}
    for v in views:
        groups.setdefault(v.summary.modality, []).append(v)
    samples: dict[str, set[str]] = {}
    for r in records:
        samples.setdefault(r.modality, set()).add(r.sample)
    return [ModalityGroup(modality, MODALITY_TITLES.get(modality, modality.capitalize()),
                          f"overview-{_anchor_word(modality)}", tuple(vs),
                          _present(_OVERVIEW_COLUMNS, [v.summary for v in vs]), negative_pools(modality),
                          len(samples.get(modality, ())))
            for modality, vs in groups.items()]


def _anchor_word(text: str) -> str:
    word = "".join(c if c.isalnum() else "-" for c in text.lower())
    return word if word.isascii() else hashlib.sha256(text.encode()).hexdigest()[:8]


def render_report(records: Sequence[Record], meta: dict[str, Any],
                  other: tuple[str, Sequence[Record]] | None = None, run_dir: Path | None = None) -> str:
    """The report page as a string; ``write_report`` is this plus reading and writing files.

    ``other`` = (label, records) of a second run to compare with, side by side.
    """
    alpha = meta.get("alpha")
    alpha_known = isinstance(alpha, (int, float)) and 0 < alpha < 1
    alpha = float(alpha) if alpha_known else DEFAULT_ALPHA
    interval = str(meta.get("interval", "wilson"))
    rows = summarize(records, alpha, interval)
    summaries = summarize_methods(records, alpha, interval)
    groups = failures(records)
    skipped = skips(records)
    views = method_views(rows, summaries, alpha)
    views = attach_examples(views, records, meta, run_dir)  # gallery and text viewer: items from run_dir
    modalities = modality_groups(views, records)
    verdict = build_verdict([("", records)])
    rocs = {mv.modality: roc_chart([r for r in records if r.modality == mv.modality],
                                   [m.method for m in mv.methods]) for mv in verdict.modalities}
    context = {
        "verdict": verdict,
        "text_setup": text_setup(records, meta),
        "comparison": compare_runs(records, other[1], alpha, other[0], interval) if other else None,
        "rocs": rocs,
        "modality_titles": MODALITY_TITLES,
        "meta": meta,
        "alpha": alpha,
        "alpha_known": alpha_known,
        "interval": interval,
        "methods": views,
        "modalities": modalities,
        "shown_modalities": {g.modality for g in modalities},
        "failures": groups,
        "failed_total": sum(len(g.cells) for g in groups),
        "skips": skipped,
        "skipped_total": sum(len(g.cells) for g in skipped),
        "cells_total": len(records),
        "samples_total": len({r.sample for r in records}),
        "attacks_total": len({r.attack for r in records if r.attack != NONE_ATTACK}),
        "max_failed_shown": MAX_FAILED_CELLS_SHOWN,
        # Okabe-Ito colours (readable with colour-vision deficiency), then two greys
        "quality_colours": ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7f7f7f", "#333333"),
        "generated_at": format_time(time.time()),
        "script": Markup(_SORT_JS),  # our own constant: nothing user-supplied reaches it
        "csp": _content_security_policy(_SORT_JS),
    }
    return _environment().get_template("report.html").render(context)


def text_setup(records: Sequence[Record], meta: dict[str, Any]) -> dict[str, str]:
    """Which LM, thesaurus and model-using attack settings produced the text numbers."""
    if not any(r.modality == "text" for r in records):
        return {}
    lm = meta.get("text_lm") or "ngram"
    out = {"Language model": "embedded word trigram LM (Kneser-Ney), trained offline" if lm == "ngram" else str(lm)}
    thesauri = Counter(str(t) for r in records if (t := (r.extra or {}).get("thesaurus")))
    out["Thesaurus"] = thesauri.most_common(1)[0][0] if thesauri else "not used by a detector"
    settings = []
    try:
        suite = tomllib.loads(meta.get("suite_text") or "")
    except tomllib.TOMLDecodeError:
        suite = {}
    for table in suite.get("attacks", []) if isinstance(suite.get("attacks"), list) else []:
        params = {k: v for k, v in table.items() if isinstance(table, dict)
                  and k not in ("name", "label", "strengths", "chain") and "key" not in k.lower()}
        if params:
            settings.append(f"{table.get('label', table.get('name'))}: "
                            + ", ".join(f"{k} = {v}" for k, v in sorted(params.items())))
    out["Attack settings"] = "; ".join(settings) or "defaults (no attack parameters in the suite)"
    return out


def verdict_cost_text(modality: str, method: Any) -> str:
    """The cheapest erasure of a method verdict in a few words."""
    cheapest = method.cheapest
    if not method.families:
        return "no attack measured"
    if cheapest is None:
        return "not erased within the tested range" if not method.erased else "erased; quality loss not measured"
    damage = cheapest.damage
    if modality == "image":
        loss = f"−{damage.drop:.1f} dB PSNR" + (f", SSIM {damage.ssim:.2f}" if damage.ssim is not None else "")
    else:
        loss = f"similarity {damage.level:.2f} (−{damage.drop:.2f})"
    return f"{cheapest.attack} {format_strength(cheapest.erased_at)}: {loss}"


def write_report(run_dir: Path, out: Path | None = None, compare: Path | None = None) -> Path:
    """Read the run's store and write its report (default ``run_dir/report.html``);
    with ``compare``, another run folder shown side by side."""
    run_dir = Path(run_dir)
    with Store(run_dir, create=False) as store:
        records = list(store.records())
        meta = store.meta()
    other = None
    if compare is not None:
        with Store(Path(compare), create=False) as store:
            other = (Path(compare).resolve().name, list(store.records()))
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_report(records, meta, other, run_dir=run_dir), encoding="utf-8")
    tmp.replace(out)  # a browser never sees half a report
    return out


def _content_security_policy(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update({
        "strength": format_strength, "rate": format_rate, "num": format_number,
        "duration": format_duration, "time": format_time, "psnr_class": psnr_class,
        "sort_value": sort_value,
        "format_key": lambda css: f"k-{css}",
    })
    env.globals["fpr_exceeds_alpha"] = fpr_exceeds_alpha
    env.globals["similarity_to_original"] = similarity_to_original
    env.globals["cost_text"] = verdict_cost_text
    return env
