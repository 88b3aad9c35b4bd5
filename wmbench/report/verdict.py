"""The verdict: can images be watermarked robustly, and text not? One calibrated scale.

Both modalities are judged the same way. The scale is detection at a 1 % false-
positive rate (the p-value threshold theory gives, checked against the measured
negatives). For each method and attack family the question is what the attacker
paid: the least quality loss at which the TPR at 1 % FPR falls below 0.5
("quality cost to erase"). Quality loss is the drop from the unattacked marked item:
PSNR (dB) and SSIM for images, semantic similarity for text.

Units differ between modalities, so the comparison between them rests on what each
modality declares: its damage metric (PSNR for images, semantic similarity for text)
and that metric's *acceptable* level (30 dB, 0.8), both stored in the run manifest.
An erasure *at acceptable quality* leaves the attacked item at or above that level. The
share of attack families that erase a mark at acceptable quality is
comparable across modalities; the sentences of the verdict are generated from those
numbers, never written in advance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from wmbench.manifest import ModalityInfo
from wmbench.report.aggregate import (
    NONE_ATTACK,
    MethodSummary,
    Row,
    failure,
    summarize,
    summarize_methods,
    tokens_needed,
)
from wmbench.report.run import StoredRun
from wmbench.stats import OperatingPoint, Rate, Roc, roc, tpr_at_fpr
from wmbench.types import MetricSpec

TARGET_FPR = 0.01
ERASED_BELOW = 0.5  # TPR at 1 % FPR under this: the attack erased the mark
EXTRA_FPRS = (0.001,)  # further operating points in the JSON output (configurable: --target-fpr)
MIN_FAMILIES = 5  # attack families a method must have met to stand for its modality


@dataclass(frozen=True)
class Damage:
    """The modality's damage metric on the attacked marked items of one row, and how far
    it fell from the clean row (a positive drop is a loss, whichever way the metric runs)."""

    metric: str
    level: float | None
    drop: float | None

    @property
    def known(self) -> bool:
        return self.drop is not None


@dataclass(frozen=True)
class FamilyResult:
    """One attack family (a suite attack row label) against one method."""

    attack: str
    weakest_tpr: Rate  # TPR at 1 % FPR at the weakest strength
    strongest_tpr: Rate
    lowest_tpr: Rate  # lowest over the strengths
    erased_at: Any | None  # strength with the least quality loss among those that erase
    damage: Damage | None  # at that strength
    acceptable: bool  # erased while quality stayed acceptable

    @property
    def erased(self) -> bool:
        return self.damage is not None


@dataclass(frozen=True)
class MethodVerdict:
    modality: str
    method: str
    clean: OperatingPoint
    roc: Roc | None
    families: tuple[FamilyResult, ...]
    summary: MethodSummary
    tokens_needed: Any | None = None  # aggregate.TokensNeeded at 1 %
    operating_points: tuple[OperatingPoint, ...] = ()  # clean, at further target FPRs
    not_run: tuple[tuple[str, str], ...] = ()  # (attack, reason) of families with skipped cells
    reading: str = ""

    @property
    def erased(self) -> list[FamilyResult]:
        return [f for f in self.families if f.erased]

    @property
    def erased_acceptably(self) -> list[FamilyResult]:
        return [f for f in self.families if f.acceptable]

    @property
    def cheapest(self) -> FamilyResult | None:
        """The erasure with the smallest quality loss (families with a measurable loss)."""
        known = [f for f in self.erased if f.damage.known]
        return min(known, key=lambda f: f.damage.drop) if known else None

    @property
    def most_robust(self) -> FamilyResult | None:
        """The family the mark survives best: highest lowest-TPR over its strengths."""
        return max(self.families, key=lambda f: f.lowest_tpr.value, default=None)


@dataclass(frozen=True)
class ModalityVerdict:
    modality: str
    methods: tuple[MethodVerdict, ...]
    reading: str
    info: ModalityInfo | None = None


@dataclass(frozen=True)
class Verdict:
    modalities: tuple[ModalityVerdict, ...]
    reading: str
    conventions: dict[str, Any] = field(default_factory=dict)

    @property
    def acceptable_text(self) -> str:
        """"PSNR >= 30 dB for images, similarity >= 0.8 for text": the declared levels in words."""
        return ", ".join(f"{_threshold_text(mv.info)} for {mv.info.title.lower()}" for mv in self.modalities
                         if mv.info is not None and _damage_spec(mv.info) is not None) or "no level declared"


# -- computing ------------------------------------------------------------------------

def _damage_spec(info: ModalityInfo) -> MetricSpec | None:
    return info.metric(info.damage_metric)


def _damage(info: ModalityInfo, row: Row, clean: Row | None) -> Damage:
    spec = _damage_spec(info)
    if spec is None:
        return Damage("", None, None)
    level = row.metric(spec.name).marked
    base = clean.metric(spec.name).marked if clean else None
    known = level is not None and base is not None and math.isfinite(base)
    drop = (base - level if spec.higher_is_better else level - base) if known else None
    return Damage(spec.name, level, drop)


def _acceptable(info: ModalityInfo, row: Row) -> bool:
    """Every metric with a declared acceptable level was measured on the row and is within it
    (images: PSNR against the aligned original and the content kept; text: similarity).
    A metric that was not measured is unknown, and unknown is never acceptable."""
    levels = [spec for spec in info.metrics if spec.acceptable is not None]
    if not levels:
        return False
    return all((value := row.metric(spec.name).marked) is not None and spec.acceptable_at(value) for spec in levels)


def _family(info: ModalityInfo, attack: str, rows: Sequence[Row], clean: Row | None) -> FamilyResult:
    usable = [r for r in rows if r.tpr.n]
    erasing = [(r, _damage(info, r, clean)) for r in usable if r.tpr.value < ERASED_BELOW]
    known = [(r, d) for r, d in erasing if d.known]
    pick = min(known, key=lambda rd: rd[1].drop) if known else (erasing[0] if erasing else None)
    empty = Rate(0, 0, 0.0, 1.0, "wilson")
    return FamilyResult(
        attack=attack,
        weakest_tpr=usable[0].tpr if usable else empty,
        strongest_tpr=usable[-1].tpr if usable else empty,
        lowest_tpr=min((r.tpr for r in usable), key=lambda t: t.value, default=empty),
        erased_at=pick[0].strength if pick else None,
        damage=pick[1] if pick else None,
        acceptable=any(_acceptable(info, r) for r, _ in erasing),
    )


def method_verdicts(run: StoredRun, label: str = "",
                    extra_fprs: Sequence[float] = EXTRA_FPRS) -> list[MethodVerdict]:
    """Per method of one run: clean operating point, ROC, and every attack family."""
    records = list(run.records)
    skipped: dict[tuple[str, str], dict[str, str]] = {}  # method -> attack -> reason
    for r in records:
        if r.skipped is not None:
            skipped.setdefault((r.modality, r.method), {}).setdefault(r.attack, r.skipped)
    records = [r for r in records if failure(r) is None]
    rows = summarize(records, TARGET_FPR)
    out = []
    for summary in summarize_methods(records, TARGET_FPR, prefix_attacks=run.prefix_attacks):
        key = (summary.modality, summary.method)
        mine = [r for r in records if (r.modality, r.method) == key]
        clean_cells = [r for r in mine if r.attack == NONE_ATTACK]
        pos = [r.p_value for r in clean_cells if r.marked]
        neg = [p for r in clean_cells for p in r.negative_p_values]  # under every key scored
        method_rows = [r for r in rows if (r.modality, r.method) == key]
        clean_row = next((r for r in method_rows if r.attack == NONE_ATTACK), None)
        families: dict[str, list[Row]] = {}
        for r in method_rows:
            if r.attack != NONE_ATTACK:
                families.setdefault(r.attack, []).append(r)
        name = f"{summary.method} [{label}]" if label else summary.method
        verdict = MethodVerdict(
            modality=summary.modality, method=name, clean=tpr_at_fpr(pos, neg, TARGET_FPR),
            operating_points=tuple(tpr_at_fpr(pos, neg, f) for f in extra_fprs),
            roc=roc(pos, neg), summary=summary,
            families=tuple(_family(run.modality(summary.modality), a, rs, clean_row) for a, rs in families.items()),
            tokens_needed=tokens_needed(mine, TARGET_FPR, run.prefix_attacks),
            not_run=tuple(sorted(skipped.get(key, {}).items())),
        )
        out.append(_with_reading(verdict, run.modality(summary.modality)))
    return out


def build_verdict(runs: Sequence[StoredRun], extra_fprs: Sequence[float] = EXTRA_FPRS) -> Verdict:
    """The verdict over one or more runs; method names get the run's name when they clash."""
    names = [r.method for run in runs for r in {(x.modality, x.method): x for x in run.records}.values()]
    clash = len(names) != len(set(names))
    methods = [v for run in runs for v in method_verdicts(run, run.label if clash else "", extra_fprs)]
    infos: dict[str, ModalityInfo] = {}
    for run in runs:
        for name in {m.modality for m in methods}:
            infos.setdefault(name, run.modality(name))
    modalities = []
    for modality in sorted({m.modality for m in methods}):
        mine = tuple(m for m in methods if m.modality == modality)
        modalities.append(ModalityVerdict(modality, mine, _modality_reading(infos[modality], mine), infos[modality]))
    conventions = {"target_fpr": TARGET_FPR, "erased_below_tpr": ERASED_BELOW,
                   "acceptable": {mv.modality: _convention(mv.info) for mv in modalities}}
    return Verdict(tuple(modalities), _overall_reading(modalities), conventions)


def _convention(info: ModalityInfo | None) -> dict[str, Any] | None:
    """The damage metric (the cost of an erasure) and every declared acceptable level."""
    spec = _damage_spec(info) if info else None
    if spec is None:
        return None
    levels = {s.name: {"acceptable": s.acceptable, "unit": s.unit, "higher_is_better": s.higher_is_better,
                       "source": s.acceptable_source} for s in info.metrics if s.acceptable is not None}
    return {"metric": spec.name, "unit": spec.unit, "higher_is_better": spec.higher_is_better,
            "acceptable": spec.acceptable, "source": spec.acceptable_source, "levels": levels}


def _threshold_text(info: ModalityInfo | None) -> str:
    """The declared acceptable levels in words: "PSNR >= 30 dB and Content kept >= 0.8"."""
    levels = [spec for spec in (info.metrics if info else ()) if spec.acceptable is not None]
    if not levels:
        return "no acceptable level declared"
    return " and ".join(f"{spec.label} {'>=' if spec.higher_is_better else '<='} {spec.acceptable:g}"
                        + (f" {spec.unit}" if spec.unit else "") for spec in levels)


# -- readings: sentences that follow from the numbers ----------------------------------

def _pct(rate: Rate) -> str:
    return "n/a" if not rate.n else f"{100 * rate.value:.0f} %"


def _loss_text(info: ModalityInfo, damage: Damage) -> str:
    spec = info.metric(damage.metric)
    if spec is None:
        return "no damage metric declared"
    if damage.drop is None:
        return f"{spec.label} not measured"
    unit = f" {spec.unit}" if spec.unit else ""
    digits = min(spec.digits, 2)
    change = "a drop" if damage.drop >= 0 else "a rise"  # a downscale can smooth the mark away: a rise
    return f"{spec.label} {damage.level:.{digits}f}{unit}, {change} of {abs(damage.drop):.{digits}f}{unit}"


def _with_reading(v: MethodVerdict, info: ModalityInfo) -> MethodVerdict:
    clean = v.clean
    parts = [f"{v.method}: detected in {_pct(clean.theory)} of clean marked items at 1 % FPR "
             f"(false alarms {clean.theory_fpr.k}/{clean.theory_fpr.n})"]
    if clean.disagree:
        parts.append("its negatives fire more often than its p-values promise, so its rates are not trustworthy")
    total = len(v.families)
    if total:
        erased, acceptable = len(v.erased), len(v.erased_acceptably)
        parts.append(f"{erased} of {total} attack families erase it, {acceptable} while quality stays acceptable")
        cheapest = v.cheapest
        if cheapest is not None:
            parts.append(f"the cheapest erasure is {cheapest.attack} at {cheapest.erased_at} "
                         f"({_loss_text(info, cheapest.damage)})")
        elif erased:
            parts.append(f"erasures come with a quality loss that was not measured ({v.erased[0].attack})")
        else:
            parts.append("not erased within the tested range")
    if v.tokens_needed is not None and v.tokens_needed.median is not None:
        parts.append(f"it needs about {v.tokens_needed.median:g} scored tokens for p < 0.01")
    return MethodVerdict(**{**v.__dict__, "reading": "; ".join(parts) + "."})


def _best(methods: Sequence[MethodVerdict]) -> MethodVerdict | None:
    """The method fewest families erase at acceptable quality (ties: higher clean TPR).

    Only methods that met at least ``MIN_FAMILIES`` attack families (or as many as
    the modality's most-attacked method, if fewer) compete: a
    variant run against two families only (e.g. a raw detector checked on the
    invisible-character attacks) would otherwise win or lose by having met few.
    Ties: fewer erasures at any quality, then the higher clean TPR.
    """
    needed = min(MIN_FAMILIES, max((len(m.families) for m in methods), default=0))
    usable = [m for m in methods if m.families and len(m.families) >= needed and m.clean.theory.n]
    return min(usable, key=lambda m: (len(m.erased_acceptably) / len(m.families), len(m.erased) / len(m.families),
                                      -m.clean.theory.value), default=None)


def _modality_reading(info: ModalityInfo, methods: Sequence[MethodVerdict]) -> str:
    best = _best(methods)
    if best is None:
        return f"{info.title}: no attacked results to judge."
    share = len(best.erased_acceptably) / len(best.families)
    quality = _threshold_text(info)
    text = (f"{info.title}: the most robust mark, {best.method}, is erased at acceptable quality "
            f"({quality}) by {len(best.erased_acceptably)} of {len(best.families)} attack families "
            f"({100 * share:.0f} %)")
    if best.erased_acceptably:
        text += ": " + ", ".join(f.attack for f in best.erased_acceptably)
    text += "."
    not_run = dict(best.not_run)
    if not_run:
        text += " Not run here: " + "; ".join(f"{a} ({reason})" for a, reason in not_run.items()) + "."
    return text


def _overall_reading(modalities: Sequence[ModalityVerdict]) -> str:
    """One sentence per pair of measured modalities, generated from the shares."""
    shares = []
    for mv in modalities:
        best = _best(mv.methods)
        if best is not None and mv.info is not None:
            shares.append((mv.info, best, len(best.erased_acceptably) / len(best.families)))
    if len(shares) < 2:
        only = " and ".join(info.title.lower() for info, _, _ in shares) or "nothing"
        return f"Attacks on {only} only were measured: no comparison between modalities."
    sentences = []
    for i, (a, best_a, s_a) in enumerate(shares):
        for b, best_b, s_b in shares[i + 1:]:
            if abs(s_a - s_b) < 0.1:
                relation = "about as fragile as"
            elif s_a < s_b:
                relation = "more robust than"
            else:
                relation = "less robust than"
            sentences.append(
                f"At 1 % FPR, the best {a.item_word} mark ({best_a.method}) is {relation} the best {b.item_word} "
                f"mark ({best_b.method}): {100 * s_a:.0f} % vs {100 * s_b:.0f} % of the tested attack families "
                f"erase them while the content stays acceptable.")
    sentences += [f"Not run for {info.item_word} marks: {', '.join(a for a, _ in best.not_run)}."
                  for info, best, _ in shares if best.not_run]
    return " ".join(sentences)


# -- output ---------------------------------------------------------------------------

def verdict_json(verdict: Verdict) -> dict[str, Any]:
    def rate_json(r: Rate | None) -> Any:
        return None if r is None else {"k": r.k, "n": r.n, "value": None if not r.n else r.value,
                                       "low": r.low, "high": r.high}

    def method_json(m: MethodVerdict) -> dict[str, Any]:
        return {
            "method": m.method, "reading": m.reading,
            "tpr_at_1pct_fpr": rate_json(m.clean.theory), "fpr_measured": rate_json(m.clean.theory_fpr),
            "tpr_empirical_threshold": rate_json(m.clean.empirical),
            "empirical_threshold": m.clean.empirical_threshold, "threshold_resolvable": m.clean.resolvable,
            "theory_disagrees": m.clean.disagree,
            "operating_points": [{
                "target_fpr": op.target_fpr, "tpr_theory": rate_json(op.theory),
                "fpr_measured": rate_json(op.theory_fpr),
                "tpr_empirical": rate_json(op.empirical), "empirical_threshold": op.empirical_threshold,
                "resolvable": op.resolvable, "disagree": op.disagree} for op in (m.clean, *m.operating_points)],
            "auc": None if m.roc is None else {"value": m.roc.auc, "low": m.roc.auc_low, "high": m.roc.auc_high},
            "tokens_needed": None if m.tokens_needed is None else m.tokens_needed.median,
            "families": [{
                "attack": f.attack, "lowest_tpr": rate_json(f.lowest_tpr), "erased": f.erased,
                "erased_at": f.erased_at, "acceptable_quality": f.acceptable,
                "quality": None if f.damage is None else f.damage.__dict__,
            } for f in m.families],
            "best_family": getattr(m.most_robust, "attack", None),
            "cheapest_erasure": getattr(m.cheapest, "attack", None),
        }

    return {"reading": verdict.reading, "conventions": verdict.conventions,
            "modalities": [{"modality": mv.modality, "reading": mv.reading,
                            "methods": [method_json(m) for m in mv.methods]} for mv in verdict.modalities]}


def cheapest_text(info: ModalityInfo | None, method: MethodVerdict) -> str:
    """The verdict table's cost cell for a method: its cheapest erasure, or why there is none."""
    if not method.families:
        return "no attack measured"
    if not method.erased:
        return "not erased within the tested range"
    if method.cheapest is None:
        return f"{method.erased[0].attack}: erased, quality loss not measured"
    return cost_text(info, method.cheapest)


def cost_text(info: ModalityInfo | None, family: FamilyResult | None) -> str:
    """The quality cost of an erasure in a few words: "jpeg 30: PSNR -4.2 dB"."""
    if family is None:
        return "not erased within the tested range"
    damage = family.damage
    spec = info.metric(damage.metric) if info and damage else None
    if damage is None or spec is None or damage.drop is None:
        return f"{family.attack} {family.erased_at}: quality loss not measured"
    unit = f" {spec.unit}" if spec.unit else ""
    change = -damage.drop if spec.higher_is_better else damage.drop  # signed as the metric moved
    return f"{family.attack} {family.erased_at}: {spec.label} {change:+.{min(spec.digits, 2)}f}{unit}"


def verdict_table(verdict: Verdict) -> str:
    """Plain-text tables, one per modality, then the readings."""
    lines = []
    for mv in verdict.modalities:
        lines.append(f"== {mv.modality} ==")
        header = ("method", "clean TPR@1%FPR [95% CI]", "FPR", "AUC", "most robust vs",
                  "cheapest erasure (quality cost)", "erased / families")
        body = []
        for m in mv.methods:
            t = m.clean.theory
            auc_text = "n/a" if m.roc is None else f"{m.roc.auc:.3f}"
            flag = (" !" if m.clean.disagree else "") + ("" if m.clean.resolvable else " ?")
            body.append((m.method, f"{t.value:.2f} [{t.low:.2f}, {t.high:.2f}]" if t.n else "n/a",
                         f"{m.clean.theory_fpr.k}/{m.clean.theory_fpr.n}{flag}", auc_text,
                         getattr(m.most_robust, "attack", "-"),
                         cheapest_text(mv.info, m),
                         f"{len(m.erased)}/{len(m.families)} ({len(m.erased_acceptably)} acceptable)"))
        widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
        for row in [header, tuple("-" * w for w in widths), *body]:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        lines.append("")
        lines += [f"  {m.reading}" for m in mv.methods]
        lines.append(f"  {mv.reading}")
        lines.append("")
    lines.append(verdict.reading)
    lines.append(f"(acceptable quality: {verdict.acceptable_text}; erased: TPR at 1 % FPR below {ERASED_BELOW:g}; "
                 "! = negatives fire more often than the p-values promise; ? = too few negatives to resolve 1 % FPR, "
                 "the threshold is theory's, unchecked)")
    return "\n".join(lines)


__all__ = ["Damage", "FamilyResult", "MethodVerdict",
           "ModalityVerdict", "TARGET_FPR", "Verdict", "build_verdict", "method_verdicts", "verdict_json",
           "verdict_table"]
