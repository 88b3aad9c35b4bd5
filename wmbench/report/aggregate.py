"""Turn cell records into the numbers a report shows.

Everything here is a pure function of the records and alpha, so a report can be
rebuilt at any time from the store (and at another alpha, since ``detected`` is
recomputed from the stored p-values rather than read back).

Two rules shape this module:

* a failed cell is never a miss: it is left out of every rate and counted in
  ``errors``, so a crashing attack cannot pass for a strong one; a *skipped* cell
  (the attack raised ``SkipCell``: it cannot run here, e.g. no endpoint configured)
  is left out too and counted in ``skipped``, not as an error;
* marked and unmarked cells are kept apart: marked cells give the detection rate
  (TPR), unmarked ones the *measured* false-positive rate (FPR), which should sit
  near alpha if the method's p-values are honest.

Unmarked cells come in two pools, named by each record's ``role``. A *twin* is the
unmarked counterpart of a marked item: the clean original for a mark added to an
existing item, the unmarked generation (same prompt, same sampling draws) for a
generation mark. An *unpaired* negative is a sample the method only ever saw
unmarked: a human text that a generation mark checks as an extra negative.

Quality metrics are whatever the modality declared (``Record.metrics``): every row
carries the mean of each, over the marked items, the twins and the unpaired
negatives apart; the report shows a column only where some row has a value.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterable, Sequence

from wmbench.stats import Rate, rate
from wmbench.store import POSITIVE, TWIN, UNPAIRED, Record

NONE_ATTACK = "none"
NO_P_VALUE = "no p-value recorded"

GroupKey = tuple[str, str, str, int]  # modality, method, attack, strength_index
MethodKey = tuple[str, str]  # modality, method
DETECTOR_SETTINGS = ("gamma", "thesaurus")  # detection ``extra`` entries shown as method settings


@dataclass(frozen=True)
class MetricMeans:
    """Mean of one quality metric over the usable cells of each role (None: no value)."""

    marked: float | None = None
    twin: float | None = None  # the unmarked twins: the attack's damage alone
    unpaired: float | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.marked, self.twin, self.unpaired))


def metric_means(cells: Sequence[Record]) -> dict[str, MetricMeans]:
    names = list(dict.fromkeys(name for r in cells for name in r.metrics))
    by_role = {role: [r for r in cells if r.role == role] for role in (POSITIVE, TWIN, UNPAIRED)}
    return {name: MetricMeans(*(finite_mean(r.metrics.get(name) for r in by_role[role])
                                for role in (POSITIVE, TWIN, UNPAIRED)))
            for name in names}


@dataclass(frozen=True)
class Row:
    """One (modality, method, attack, strength) setting, pooled over samples and keys."""

    modality: str
    method: str
    attack: str
    strength: Any
    strength_index: int
    tpr: Rate  # detected among marked cells that did not fail
    fpr: Rate  # detected among unmarked cells that did not fail (both pools)
    fpr_paired: Rate  # ... among the paired negatives only (== fpr without unpaired ones)
    fpr_unpaired: Rate  # ... among the unpaired negatives (human texts of a generation mark); n = 0 if none
    errors: int  # failed cells, marked and unmarked
    refused: int  # marked cells the detector could not read (counted as not detected, p = 1)
    mean_bits: float | None  # mean payload bits matched on marked items
    bits_total: int | None
    metrics: dict[str, MetricMeans] = field(default_factory=dict)  # the modality's declared metrics
    mean_tokens: float | None = None  # tokens the detector scored, marked items
    mean_substitutable: float | None = None  # words the detector could score (lexical), marked items
    mean_words: float | None = None  # all words, marked items (lexical)
    skipped: int = 0  # cells the attack could not run here (SkipCell), marked and unmarked

    def metric(self, name: str) -> MetricMeans:
        return self.metrics.get(name, _NO_MEANS)

    @property
    def n_pos(self) -> int:
        return self.tpr.n

    @property
    def n_neg(self) -> int:
        return self.fpr.n

    @property
    def is_clean(self) -> bool:
        return self.attack == NONE_ATTACK


@dataclass(frozen=True)
class MethodSummary:
    """Headline numbers of one method: what embedding costs and how it does unattacked."""

    modality: str
    method: str
    samples: int
    keys: int
    cells: int
    errors: int
    embed_seconds: float | None
    clean_tpr: Rate
    clean_fpr: Rate  # both negative pools
    clean_fpr_paired: Rate  # paired negatives only (== clean_fpr without unpaired ones)
    clean_fpr_unpaired: Rate  # unpaired negatives only; n = 0 if none
    unpaired_samples: int = 0  # samples seen only unmarked: human texts under a generation mark
    clean_metrics: dict[str, MetricMeans] = field(default_factory=dict)  # no attack: what marking costs
    clean_tokens: float | None = None  # tokens scored on marked items, no attack
    settings: tuple[tuple[str, str], ...] = ()  # detector settings reported in ``extra`` (gamma, ...)
    skipped: int = 0  # cells the attack could not run here (SkipCell)
    tokens_needed: TokensNeeded | None = None  # text marks swept with the truncate attack

    @property
    def has_unpaired(self) -> bool:
        """Negatives come in two pools: this is a generation mark checked on human texts too."""
        return self.unpaired_samples > 0

    @property
    def paired_samples(self) -> int:
        return self.samples - self.unpaired_samples

    def clean_metric(self, name: str) -> MetricMeans:
        return self.clean_metrics.get(name, _NO_MEANS)

    def ratio(self, name: str) -> float | None:
        """Marking cost on a metric measured on the item alone: marked over twin, no attack."""
        means = self.clean_metric(name)
        if means.marked is None or not means.twin:
            return None
        return means.marked / means.twin


_NO_MEANS = MetricMeans()


@dataclass(frozen=True)
class TokensNeeded:
    """How much text a detection needs, from the ``truncate`` sweep (prefixes of marked texts).

    Per marked sample: the tokens the detector scored on the shortest tested prefix
    with p < alpha (longer prefixes are not required to pass too; the full text
    counts as the longest prefix). ``median`` is over the samples that got there.
    """

    median: float | None
    reached: int  # samples detected on some prefix
    samples: int  # samples with usable prefix cells

    @property
    def text(self) -> str:
        if self.median is None:
            return f"not reached (0/{self.samples})"
        return f"{self.median:g} ({self.reached}/{self.samples})"


def tokens_needed(cells: Iterable[Record], alpha: float, prefix_attacks: Collection[str]) -> TokensNeeded | None:
    """Tokens needed for p < alpha, or None when the run has no prefix sweep.

    ``prefix_attacks``: labels of the attacks tagged ``prefix`` (their cells are
    detections on prefixes of the marked item, e.g. the truncate sweep)."""
    by_sample: dict[str, list[Record]] = {}
    has_prefixes = False
    for r in cells:
        if (r.marked and failure(r) is None and (r.attack in prefix_attacks or r.attack == NONE_ATTACK)
                and r.tokens is not None):
            by_sample.setdefault(r.sample, []).append(r)
            has_prefixes |= r.attack in prefix_attacks
    if not has_prefixes:
        return None
    needed = []
    for prefixes in by_sample.values():
        passing = [r.tokens for r in prefixes if is_detected(r, alpha)]
        if passing:
            needed.append(min(passing))
    median = float(statistics.median(needed)) if needed else None
    return TokensNeeded(median=median, reached=len(needed), samples=len(by_sample))


@dataclass(frozen=True)
class FailedCell:
    sample: str
    method: str
    attack: str
    strength: Any
    marked: bool


@dataclass(frozen=True)
class FailureGroup:
    """All failed cells that share one error message, so a single cause shows once."""

    message: str
    cells: tuple[FailedCell, ...]


def failure(record: Record) -> str | None:
    """The reason a cell cannot count, or None when it has a usable p-value.

    A cell without an error but also without a p-value should not exist; it is
    treated as failed rather than silently dropped or counted as a miss. A skipped
    cell cannot count either (its reason is returned), but it is reported apart,
    never as failed: see :func:`skips`.
    """
    if record.error is not None:
        return record.error
    if record.skipped is not None:
        return record.skipped
    if record.p_value is None or math.isnan(record.p_value):
        return NO_P_VALUE
    return None


def is_detected(record: Record, alpha: float) -> bool:
    """Detection at the report's alpha; only meaningful when ``failure`` is None."""
    return record.p_value is not None and record.p_value < alpha


def finite_mean(values: Iterable[float | int | None]) -> float | None:
    """Mean of the finite values; None if there are none.

    PSNR is +inf for identical images and None when the sizes differ; neither can
    enter an average, and "no value" must stay distinguishable from 0.
    """
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def fpr_exceeds_alpha(fpr: Rate, alpha: float) -> bool:
    """True when the measured FPR is significantly above alpha (its CI lies above it)."""
    return fpr.n > 0 and fpr.low > alpha


def summarize(records: Iterable[Record], alpha: float, interval: str = "wilson") -> list[Row]:
    """One Row per setting, ordered by method, attack (first seen, "none" first), strength."""
    groups = _group(records, lambda r: (r.modality, r.method, r.attack, r.strength_index))
    return [_row(key, cells, alpha, interval) for key, cells in _ordered(groups)]


def summarize_methods(records: Iterable[Record], alpha: float, interval: str = "wilson",
                      prefix_attacks: Collection[str] = ()) -> list[MethodSummary]:
    """One MethodSummary per (modality, method), in first-seen order."""
    groups = _group(records, lambda r: (r.modality, r.method))
    return [_method_summary(key, cells, alpha, interval, prefix_attacks) for key, cells in groups.items()]


def failures(records: Iterable[Record]) -> list[FailureGroup]:
    """Failed cells grouped by error message, the most frequent message first."""
    groups: dict[str, list[FailedCell]] = {}
    for r in records:
        message = failure(r) if r.skipped is None else None
        if message is not None:
            groups.setdefault(message, []).append(
                FailedCell(r.sample, r.method, r.attack, r.strength, r.marked))
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))  # stable: ties keep first-seen order
    return [FailureGroup(message, tuple(cells)) for message, cells in ordered]


def skips(records: Iterable[Record]) -> list[FailureGroup]:
    """Skipped cells grouped by their reason, the most frequent first (same shape as failures)."""
    groups: dict[str, list[FailedCell]] = {}
    for r in records:
        if r.skipped is not None:
            groups.setdefault(r.skipped, []).append(FailedCell(r.sample, r.method, r.attack, r.strength, r.marked))
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    return [FailureGroup(message, tuple(cells)) for message, cells in ordered]


# -- helpers ------------------------------------------------------------------------

def _group(records: Iterable[Record], key: Callable[[Record], Any]) -> dict[Any, list[Record]]:
    groups: dict[Any, list[Record]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return groups


def _ordered(groups: dict[GroupKey, list[Record]]) -> list[tuple[GroupKey, list[Record]]]:
    """Method and attack in first-seen order, the clean row first, then strength weak -> strong.

    First-seen keeps the suite's order (the runner stores cells in plan order)
    without the report having to re-read the suite.
    """
    method_rank: dict[tuple[str, str], int] = {}
    attack_rank: dict[tuple[str, str, str], int] = {}
    for modality, method, attack, _ in groups:
        method_rank.setdefault((modality, method), len(method_rank))
        attack_rank.setdefault((modality, method, attack), len(attack_rank))

    def rank(item: tuple[GroupKey, list[Record]]) -> tuple[int, bool, int, int]:
        modality, method, attack, index = item[0]
        return (method_rank[(modality, method)], attack != NONE_ATTACK,
                attack_rank[(modality, method, attack)], index)

    return sorted(groups.items(), key=rank)


def _split(cells: Sequence[Record], marked: bool) -> tuple[list[Record], int]:
    """The usable cells of one polarity, and how many of that polarity failed (skipped ones are neither)."""
    same = [r for r in cells if r.marked == marked and r.skipped is None]
    ok = [r for r in same if failure(r) is None]
    return ok, len(same) - len(ok)


def _detection_rate(ok: Sequence[Record], alpha: float, interval: str) -> Rate:
    return rate(sum(is_detected(r, alpha) for r in ok), len(ok), interval)


def _pools(neg: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    """Usable negatives split into (twins, unpaired negatives-only samples)."""
    return [r for r in neg if r.role != UNPAIRED], [r for r in neg if r.role == UNPAIRED]


def _extra_number(record: Record, name: str) -> float | None:
    value = (record.extra or {}).get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _row(key: GroupKey, cells: list[Record], alpha: float, interval: str) -> Row:
    modality, method, attack, index = key
    pos, pos_errors = _split(cells, marked=True)
    neg, neg_errors = _split(cells, marked=False)
    twins, unpaired = _pools(neg)
    with_bits = [r for r in pos if r.bits_matched is not None]
    totals = Counter(r.bits_total for r in with_bits if r.bits_total is not None)
    return Row(
        modality=modality, method=method, attack=attack,
        strength=cells[0].strength, strength_index=index,
        tpr=_detection_rate(pos, alpha, interval),
        fpr=_detection_rate(neg, alpha, interval),
        errors=pos_errors + neg_errors,
        refused=sum(1 for r in pos if (r.extra or {}).get("refused")),
        metrics=metric_means(pos + neg),
        mean_bits=finite_mean(r.bits_matched for r in with_bits),
        bits_total=totals.most_common(1)[0][0] if totals else None,
        fpr_paired=_detection_rate(twins, alpha, interval),
        fpr_unpaired=_detection_rate(unpaired, alpha, interval),
        mean_tokens=finite_mean(r.tokens for r in pos),
        mean_substitutable=finite_mean(_extra_number(r, "substitutable") for r in pos),
        mean_words=finite_mean(_extra_number(r, "words") for r in pos),
        skipped=sum(r.skipped is not None for r in cells),
    )


def _method_summary(key: MethodKey, cells: list[Record], alpha: float, interval: str,
                    prefix_attacks: Collection[str]) -> MethodSummary:
    modality, method = key
    clean = [r for r in cells if r.attack == NONE_ATTACK]
    pos, _ = _split(clean, marked=True)
    neg, _ = _split(clean, marked=False)
    twins, unpaired = _pools(neg)
    samples = {r.sample for r in cells}
    unpaired_samples = len({r.sample for r in cells if r.role == UNPAIRED})
    return MethodSummary(
        modality=modality, method=method,
        samples=len(samples),
        keys=len({r.wm_key for r in cells}),
        cells=len(cells),
        errors=sum(failure(r) is not None and r.skipped is None for r in cells),
        skipped=sum(r.skipped is not None for r in cells),
        embed_seconds=finite_mean(_embed_seconds(r) for r in pos),
        clean_tpr=_detection_rate(pos, alpha, interval),
        clean_fpr=_detection_rate(neg, alpha, interval),
        unpaired_samples=unpaired_samples,
        clean_fpr_paired=_detection_rate(twins, alpha, interval),
        clean_fpr_unpaired=_detection_rate(unpaired, alpha, interval),
        clean_metrics=metric_means(pos + neg),
        clean_tokens=finite_mean(r.tokens for r in pos),
        settings=_settings(cells),
        tokens_needed=tokens_needed(cells, alpha, prefix_attacks),
    )


def _embed_seconds(record: Record) -> float | None:
    return _extra_number(record, "embed_seconds")


def _settings(cells: Sequence[Record]) -> tuple[tuple[str, str], ...]:
    """Detector settings the cells report (most common value of each), for the method's header."""
    out = []
    for name in DETECTOR_SETTINGS:
        values = Counter(str(v) for r in cells if (v := (r.extra or {}).get(name)) is not None
                         and not isinstance(v, (dict, list)))
        if values:
            out.append((name, values.most_common(1)[0][0]))
    return tuple(out)
