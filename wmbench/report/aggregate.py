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

Unmarked cells come in two pools. A *paired* negative is the unmarked twin of a
marked item: the clean original for a mark added to an existing item, the unmarked
generation (same prompt, same sampling draws) for a generation mark. An *unpaired*
negative is a sample the method only ever saw unmarked: a human text that a
generation mark checks as an extra negative. The records carry no role field, but
the rule is exact: the planner gives a sample marked cells under a method iff it
can mark it, so a sample with no marked cell under a method is an unpaired one.

Quality columns depend on the modality: images fill ``psnr``/``ssim``/``bits``,
text fills ``perplexity``/``similarity``/``tokens``; the others stay None and the
report hides a column that has no value.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from wmbench.stats import Rate, rate
from wmbench.store import Record

NONE_ATTACK = "none"
PREFIX_ATTACK = "truncate"  # its rows are detections on text prefixes: they give "tokens needed"
NO_P_VALUE = "no p-value recorded"

GroupKey = tuple[str, str, str, int]  # modality, method, attack, strength_index
MethodKey = tuple[str, str]  # modality, method
DETECTOR_SETTINGS = ("gamma", "thesaurus")  # detection ``extra`` entries shown as method settings


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
    mean_psnr: float | None  # marked item vs clean original: embedding + attack damage
    mean_ssim: float | None
    mean_psnr_unmarked: float | None  # unmarked item vs original: the attack's damage alone
    mean_bits: float | None  # mean payload bits matched on marked items
    bits_total: int | None
    # Text quality.
    mean_perplexity: float | None = None  # marked items, under the reference LM
    mean_perplexity_unmarked: float | None = None  # paired negatives (unmarked generation / original)
    mean_perplexity_unpaired: float | None = None  # unpaired negatives (human texts of a generation mark)
    mean_similarity: float | None = None  # marked items vs their reference
    mean_similarity_unmarked: float | None = None  # paired negatives vs their reference: the attack alone
    mean_tokens: float | None = None  # tokens the detector scored, marked items
    mean_substitutable: float | None = None  # words the detector could score (lexical), marked items
    mean_words: float | None = None  # all words, marked items (lexical)
    skipped: int = 0  # cells the attack could not run here (SkipCell), marked and unmarked

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
    embed_psnr: float | None  # mean over marked "none" cells
    embed_ssim: float | None
    embed_seconds: float | None
    clean_tpr: Rate
    clean_fpr: Rate  # both negative pools
    clean_fpr_paired: Rate  # paired negatives only (== clean_fpr without unpaired ones)
    clean_fpr_unpaired: Rate  # unpaired negatives only; n = 0 if none
    unpaired_samples: int = 0  # samples seen only unmarked: human texts under a generation mark
    embed_perplexity: float | None = None  # marked items, no attack
    clean_perplexity_unmarked: float | None = None  # paired negatives, no attack
    clean_perplexity_unpaired: float | None = None  # unpaired negatives, no attack
    embed_similarity: float | None = None  # marked items vs their reference, no attack
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

    @property
    def perplexity_ratio(self) -> float | None:
        """Marking cost in fluency: perplexity of marked over unmarked (paired) items, no attack."""
        if self.embed_perplexity is None or not self.clean_perplexity_unmarked:
            return None
        return self.embed_perplexity / self.clean_perplexity_unmarked


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


def tokens_needed(cells: Iterable[Record], alpha: float) -> TokensNeeded | None:
    """Tokens needed for p < alpha, or None when the run has no prefix sweep."""
    by_sample: dict[str, list[Record]] = {}
    has_prefixes = False
    for r in cells:
        if r.marked and failure(r) is None and r.attack in (PREFIX_ATTACK, NONE_ATTACK) and r.tokens is not None:
            by_sample.setdefault(r.sample, []).append(r)
            has_prefixes |= r.attack == PREFIX_ATTACK
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
    records = list(records)
    paired = paired_samples(records)
    groups = _group(records, lambda r: (r.modality, r.method, r.attack, r.strength_index))
    return [_row(key, cells, alpha, interval, paired[key[:2]]) for key, cells in _ordered(groups)]


def summarize_methods(records: Iterable[Record], alpha: float, interval: str = "wilson") -> list[MethodSummary]:
    """One MethodSummary per (modality, method), in first-seen order."""
    records = list(records)
    paired = paired_samples(records)
    groups = _group(records, lambda r: (r.modality, r.method))
    return [_method_summary(key, cells, alpha, interval, paired[key]) for key, cells in groups.items()]


def paired_samples(records: Iterable[Record]) -> dict[MethodKey, set[str]]:
    """Per method, the samples that have a marked cell (failed or not): the rest are unpaired.

    Exact rather than guessed from sample ids: the planner gives a sample marked cells
    under a method iff the method can mark it, and stores a job's cells together, so
    a prompt never shows up with unmarked cells only.
    """
    out: dict[MethodKey, set[str]] = {}
    for r in records:
        mine = out.setdefault((r.modality, r.method), set())
        if r.marked:
            mine.add(r.sample)
    return out


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


def _pools(neg: Sequence[Record], paired: set[str]) -> tuple[list[Record], list[Record]]:
    """Usable negatives split into (paired twins, unpaired negatives-only samples)."""
    return [r for r in neg if r.sample in paired], [r for r in neg if r.sample not in paired]


def _extra_number(record: Record, name: str) -> float | None:
    value = (record.extra or {}).get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _row(key: GroupKey, cells: list[Record], alpha: float, interval: str, paired: set[str]) -> Row:
    modality, method, attack, index = key
    pos, pos_errors = _split(cells, marked=True)
    neg, neg_errors = _split(cells, marked=False)
    twins, unpaired = _pools(neg, paired)
    with_bits = [r for r in pos if r.bits_matched is not None]
    totals = Counter(r.bits_total for r in with_bits if r.bits_total is not None)
    return Row(
        modality=modality, method=method, attack=attack,
        strength=cells[0].strength, strength_index=index,
        tpr=_detection_rate(pos, alpha, interval),
        fpr=_detection_rate(neg, alpha, interval),
        errors=pos_errors + neg_errors,
        refused=sum(1 for r in pos if (r.extra or {}).get("refused")),
        mean_psnr=finite_mean(r.psnr for r in pos),
        mean_ssim=finite_mean(r.ssim for r in pos),
        mean_psnr_unmarked=finite_mean(r.psnr for r in neg),
        mean_bits=finite_mean(r.bits_matched for r in with_bits),
        bits_total=totals.most_common(1)[0][0] if totals else None,
        fpr_paired=_detection_rate(twins, alpha, interval),
        fpr_unpaired=_detection_rate(unpaired, alpha, interval),
        mean_perplexity=finite_mean(r.perplexity for r in pos),
        mean_perplexity_unmarked=finite_mean(r.perplexity for r in twins),
        mean_perplexity_unpaired=finite_mean(r.perplexity for r in unpaired),
        mean_similarity=finite_mean(r.similarity for r in pos),
        mean_similarity_unmarked=finite_mean(r.similarity for r in twins),
        mean_tokens=finite_mean(r.tokens for r in pos),
        mean_substitutable=finite_mean(_extra_number(r, "substitutable") for r in pos),
        mean_words=finite_mean(_extra_number(r, "words") for r in pos),
        skipped=sum(r.skipped is not None for r in cells),
    )


def _method_summary(key: MethodKey, cells: list[Record], alpha: float, interval: str,
                    paired: set[str]) -> MethodSummary:
    modality, method = key
    clean = [r for r in cells if r.attack == NONE_ATTACK]
    pos, _ = _split(clean, marked=True)
    neg, _ = _split(clean, marked=False)
    twins, unpaired = _pools(neg, paired)
    samples = {r.sample for r in cells}
    unpaired_samples = len(samples - paired)
    return MethodSummary(
        modality=modality, method=method,
        samples=len(samples),
        keys=len({r.wm_key for r in cells}),
        cells=len(cells),
        errors=sum(failure(r) is not None and r.skipped is None for r in cells),
        skipped=sum(r.skipped is not None for r in cells),
        embed_psnr=finite_mean(r.psnr for r in pos),
        embed_ssim=finite_mean(r.ssim for r in pos),
        embed_seconds=finite_mean(_embed_seconds(r) for r in pos),
        clean_tpr=_detection_rate(pos, alpha, interval),
        clean_fpr=_detection_rate(neg, alpha, interval),
        unpaired_samples=unpaired_samples,
        clean_fpr_paired=_detection_rate(twins, alpha, interval),
        clean_fpr_unpaired=_detection_rate(unpaired, alpha, interval),
        embed_perplexity=finite_mean(r.perplexity for r in pos),
        clean_perplexity_unmarked=finite_mean(r.perplexity for r in twins),
        clean_perplexity_unpaired=finite_mean(r.perplexity for r in unpaired),
        embed_similarity=finite_mean(r.similarity for r in pos),
        clean_tokens=finite_mean(r.tokens for r in pos),
        settings=_settings(cells),
        tokens_needed=tokens_needed(cells, alpha) if modality == "text" else None,
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
