"""The page model of the report: per modality an Overview, per method a section,
with the quality columns the modality declared (from the run manifest).

Columns are data, not template code: a :class:`MetricColumn` says which metric, over
which items (marked, their unmarked twins, the unpaired negatives) and under which
heading, so a new modality's metrics get headings, tooltips and colours without an
edit here or in the template.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from wmbench.manifest import ModalityInfo
from wmbench.report.aggregate import NONE_ATTACK, MethodSummary, MetricMeans, Row
from wmbench.report.charts import Chart, QualityChart, quality_chart, robustness_chart
from wmbench.report.run import StoredRun
from wmbench.types import MetricSpec, NegativePools


@dataclass(frozen=True)
class MetricColumn:
    """One quality column: ``spec`` measured over the items of ``role``.

    role: "marked", "twin" (the unmarked twins: the attack's damage alone), "unpaired"
    (negatives-only samples), or "ratio" (marked over twin: a marking cost, for a
    metric measured on the item alone).
    """

    spec: MetricSpec
    role: str
    heading: str
    title: str

    def value(self, means: MetricMeans) -> float | None:
        if self.role == "ratio":
            return None if means.marked is None or not means.twin else means.marked / means.twin
        return getattr(means, self.role)

    @property
    def digits(self) -> int:
        return 2 if self.role == "ratio" else self.spec.digits

    @property
    def coloured(self) -> bool:
        """Marked items against a declared acceptable level get a colour."""
        return self.role == "marked" and self.spec.acceptable is not None


def _unit(spec: MetricSpec) -> str:
    return f" ({spec.unit})" if spec.unit else ""


def row_columns(info: ModalityInfo, pools: NegativePools, split: bool) -> list[MetricColumn]:
    """Every candidate column of a method's results table, in declaration order."""
    out = []
    for spec in info.metrics:
        what = f"{spec.description or spec.label}{_unit(spec)}; reference: {spec.reference}"
        out.append(MetricColumn(spec, "marked", spec.label, f"Marked items: {what}"))
        if spec.show_unmarked:
            twins = pools.paired if split else f"unmarked {info.item_word}s"
            out.append(MetricColumn(spec, "twin", f"{spec.label} {pools.paired_short if split else 'unmarked'}",
                                    f"The {twins}: {what}. The attack's damage alone."))
            if spec.intrinsic:
                out.append(MetricColumn(spec, "unpaired", f"{spec.label} {pools.unpaired_short}",
                                        f"The {pools.unpaired}: {what}"))
    return out


def overview_columns(info: ModalityInfo) -> list[MetricColumn]:
    """The marking cost, no attack: each metric on the marked items; a metric measured on
    the item alone also on the unmarked twins, with the ratio of the two."""
    out = []
    for spec in info.metrics:
        what = f"{spec.description or spec.label}{_unit(spec)}"
        if spec.intrinsic:
            out += [MetricColumn(spec, "marked", f"{spec.label} marked", f"Marked items, no attack: {what}"),
                    MetricColumn(spec, "twin", f"{spec.label} unmarked",
                                 f"Their unmarked twins, no attack: {what}"),
                    MetricColumn(spec, "ratio", "Ratio", f"{spec.label} marked / unmarked: the marking cost "
                                                         f"(1 = none)")]
        else:
            out.append(MetricColumn(spec, "marked", f"Embed {spec.label}",
                                    f"Marked items against {spec.reference}, no attack: {what}"))
    return out


def _present(columns: Sequence[MetricColumn], means: Sequence[Callable[[str], MetricMeans]]) -> list[MetricColumn]:
    return [c for c in columns if any(c.value(get(c.spec.name)) is not None for get in means)]


@dataclass(frozen=True)
class MethodView:
    summary: MethodSummary
    rows: tuple[Row, ...]
    charts: tuple[Chart, ...]
    columns: frozenset[str]  # optional non-metric columns with a value: bits, tokens, refused, ...
    metric_columns: tuple[MetricColumn, ...]
    anchor: str
    pools: NegativePools
    info: ModalityInfo
    generates: bool = False  # a generation mark: its references are its own unattacked generations
    quality: QualityChart | None = None
    example: Any = None  # the modality's report view of one sample (gallery, text viewer); has .html()

    @property
    def split(self) -> bool:
        """FPR is shown per pool of negatives: unmarked twins and unpaired samples."""
        return "split" in self.columns


@dataclass(frozen=True)
class ModalityGroup:
    """The methods of one modality: one Overview table, then one section per method."""

    info: ModalityInfo
    anchor: str
    methods: tuple[MethodView, ...]
    columns: frozenset[str]  # optional Overview columns with a value (see _OVERVIEW_COLUMNS)
    metric_columns: tuple[MetricColumn, ...]
    samples: int  # distinct samples of this modality in the run

    @property
    def modality(self) -> str:
        return self.info.name

    @property
    def title(self) -> str:
        return self.info.title

    @property
    def pools(self) -> NegativePools:
        return self.info.pools


# Optional non-metric columns of a method's table: shown only when some row has a value.
_ROW_COLUMNS: dict[str, Callable[[Row], Any]] = {
    "bits": lambda r: r.mean_bits,
    "tokens": lambda r: r.mean_tokens,
    "substitutable": lambda r: r.mean_substitutable,
    "refused": lambda r: r.refused or None,
    "skipped": lambda r: r.skipped or None,
}

_OVERVIEW_COLUMNS: dict[str, Callable[[MethodSummary], Any]] = {
    "tokens": lambda s: s.clean_tokens,
    "tokens_needed": lambda s: s.tokens_needed,
    "unpaired": lambda s: s.unpaired_samples or None,
}


def _present_names(getters: dict[str, Callable[[Any], Any]], items: Sequence[Any]) -> frozenset[str]:
    return frozenset(name for name, get in getters.items() if any(get(i) is not None for i in items))


def method_views(run: StoredRun, rows: Sequence[Row], summaries: Sequence[MethodSummary],
                 alpha: float) -> list[MethodView]:
    """Group the rows by method and draw one chart per attack (the clean row is not an attack).

    Methods come grouped by modality (in name order), first-seen order within.
    """
    order = sorted({s.modality for s in summaries})
    ordered = sorted(summaries, key=lambda s: order.index(s.modality))  # stable: keeps first-seen order
    views = []
    for i, summary in enumerate(ordered):
        info = run.modality(summary.modality)
        mine = tuple(r for r in rows if (r.modality, r.method) == (summary.modality, summary.method))
        split = summary.has_unpaired
        attacks: dict[str, list[Row]] = {}
        for r in mine:
            if r.attack != NONE_ATTACK:
                attacks.setdefault(r.attack, []).append(r)
        charts = tuple(robustness_chart(a, rs, alpha, info.pools if split else None, run.attack_unit(a))
                       for a, rs in attacks.items())
        columns = _present_names(_ROW_COLUMNS, mine) | ({"split"} if split else set())
        metric_columns = _present(row_columns(info, info.pools, split), [r.metric for r in mine])
        views.append(MethodView(summary, mine, charts, columns, tuple(metric_columns), anchor=f"method-{i}",
                                pools=info.pools, info=info, generates=run.generates(summary.method),
                                quality=quality_chart(info, mine, alpha)))
    return views


def modality_groups(run: StoredRun, views: Sequence[MethodView]) -> list[ModalityGroup]:
    """One group per modality, in the order of ``views``."""
    groups: dict[str, list[MethodView]] = {}
    for v in views:
        groups.setdefault(v.summary.modality, []).append(v)
    samples: dict[str, set[str]] = {}
    for r in run.records:
        samples.setdefault(r.modality, set()).add(r.sample)
    out = []
    for modality, vs in groups.items():
        info = run.modality(modality)
        metric_columns = _present(overview_columns(info), [v.summary.clean_metric for v in vs])
        out.append(ModalityGroup(info, f"overview-{_anchor_word(modality)}", tuple(vs),
                                 _present_names(_OVERVIEW_COLUMNS, [v.summary for v in vs]), tuple(metric_columns),
                                 len(samples.get(modality, ()))))
    return out


def clean_value(view: MethodView, column: MetricColumn) -> float | None:
    """A method's Overview value for ``column``; None where it means nothing: a generation
    mark's metric against a reference on its clean row is against itself (1 by definition)."""
    if view.generates and not column.spec.intrinsic:
        return None
    return column.value(view.summary.clean_metric(column.spec.name))


def _anchor_word(text: str) -> str:
    word = "".join(c if c.isalnum() else "-" for c in text.lower())
    return word if word.isascii() else hashlib.sha256(text.encode()).hexdigest()[:8]
