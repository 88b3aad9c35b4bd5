"""Turn cell records into the numbers a report shows.

Everything here is a pure function of the records and alpha, so a report can be
rebuilt at any time from the store (and at another alpha, since ``detected`` is
recomputed from the stored p-values rather than read back).

Two rules shape this module:

* a failed cell is never a miss: it is left out of every rate and counted in
  ``errors``, so a crashing attack cannot pass for a strong one;
* marked and unmarked cells are kept apart: marked cells give the detection rate
  (TPR), unmarked ones the *measured* false-positive rate (FPR), which should sit
  near alpha if the method's p-values are honest.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from wmbench.stats import Rate, rate
from wmbench.store import Record

NONE_ATTACK = "none"
NO_P_VALUE = "no p-value recorded"

GroupKey = tuple[str, str, str, int]  # modality, method, attack, strength_index


@dataclass(frozen=True)
class Row:
    """One (modality, method, attack, strength) setting, pooled over samples and keys."""

    modality: str
    method: str
    attack: str
    strength: Any
    strength_index: int
    tpr: Rate  # detected among marked cells that did not fail
    fpr: Rate  # detected among unmarked cells that did not fail
    errors: int  # failed cells, marked and unmarked
    refused: int  # marked cells the detector could not read (counted as not detected, p = 1)
    mean_psnr: float | None  # marked item vs clean original: embedding + attack damage
    mean_ssim: float | None
    mean_psnr_unmarked: float | None  # unmarked item vs original: the attack's damage alone
    mean_bits: float | None  # mean payload bits matched on marked items
    bits_total: int | None

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
    clean_fpr: Rate


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
    treated as failed rather than silently dropped or counted as a miss.
    """
    if record.error is not None:
        return record.error
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


def summarize_methods(records: Iterable[Record], alpha: float, interval: str = "wilson") -> list[MethodSummary]:
    """One MethodSummary per (modality, method), in first-seen order."""
    groups = _group(records, lambda r: (r.modality, r.method))
    return [_method_summary(key, cells, alpha, interval) for key, cells in groups.items()]


def failures(records: Iterable[Record]) -> list[FailureGroup]:
    """Failed cells grouped by error message, the most frequent message first."""
    groups: dict[str, list[FailedCell]] = {}
    for r in records:
        message = failure(r)
        if message is not None:
            groups.setdefault(message, []).append(
                FailedCell(r.sample, r.method, r.attack, r.strength, r.marked))
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))  # stable: ties keep first-seen order
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
    """The usable cells of one polarity, and how many of that polarity failed."""
    same = [r for r in cells if r.marked == marked]
    ok = [r for r in same if failure(r) is None]
    return ok, len(same) - len(ok)


def _detection_rate(ok: Sequence[Record], alpha: float, interval: str) -> Rate:
    return rate(sum(is_detected(r, alpha) for r in ok), len(ok), interval)


def _row(key: GroupKey, cells: list[Record], alpha: float, interval: str) -> Row:
    modality, method, attack, index = key
    pos, pos_errors = _split(cells, marked=True)
    neg, neg_errors = _split(cells, marked=False)
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
    )


def _method_summary(key: tuple[str, str], cells: list[Record], alpha: float, interval: str) -> MethodSummary:
    modality, method = key
    clean = [r for r in cells if r.attack == NONE_ATTACK]
    pos, _ = _split(clean, marked=True)
    neg, _ = _split(clean, marked=False)
    return MethodSummary(
        modality=modality, method=method,
        samples=len({r.sample for r in cells}),
        keys=len({r.wm_key for r in cells}),
        cells=len(cells),
        errors=sum(failure(r) is not None for r in cells),
        embed_psnr=finite_mean(r.psnr for r in pos),
        embed_ssim=finite_mean(r.ssim for r in pos),
        embed_seconds=finite_mean(_embed_seconds(r) for r in pos),
        clean_tpr=_detection_rate(pos, alpha, interval),
        clean_fpr=_detection_rate(neg, alpha, interval),
    )


def _embed_seconds(record: Record) -> float | None:
    value = (record.extra or {}).get("embed_seconds")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
