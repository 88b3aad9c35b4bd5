"""The verdict: can images be watermarked robustly, and text not? One calibrated scale.

Both modalities are judged the same way. The scale is detection at a 1 % false-
positive rate (the p-value threshold theory gives, checked against the measured
negatives). For each method and attack family the question is what the attacker
paid: the least quality loss at which the TPR at 1 % FPR falls below 0.5
("quality cost to erase"). Quality loss is the drop from the unattacked marked item:
PSNR (dB) and SSIM for images, semantic similarity for text.

Units differ between modalities, so the comparison between them rests on one
declared convention: an erasure *at acceptable quality* is one where the attacked
item still has PSNR >= 30 dB (images) or semantic similarity >= 0.8 to its reference
(text). The share of attack families that erase a mark at acceptable quality is
comparable across modalities; the sentences of the verdict are generated from those
numbers, never written in advance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from wmbench.report.aggregate import (
    NONE_ATTACK,
    MethodSummary,
    Row,
    failure,
    summarize,
    summarize_methods,
    tokens_needed,
)
from wmbench.stats import OperatingPoint, Rate, Roc, roc, tpr_at_fpr
from wmbench.store import Record

TARGET_FPR = 0.01
ERASED_BELOW = 0.5  # TPR at 1 % FPR under this: the attack erased the mark
ACCEPTABLE_PSNR = 30.0  # dB, attacked image vs original
ACCEPTABLE_SIMILARITY = 0.8  # attacked text vs its reference
EXTRA_FPRS = (0.001,)  # further operating points in the JSON output (configurable: --target-fpr)
MIN_FAMILIES = 5  # attack families a method must have met to stand for its modality


@dataclass(frozen=True)
class Damage:
    """Quality of the attacked marked items of one row, and the drop from the clean row."""

    level: float | None  # PSNR (dB) or similarity
    drop: float | None
    ssim: float | None = None  # images: SSIM level
    ssim_drop: float | None = None

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


@dataclass(frozen=True)
class Verdict:
    modalities: tuple[ModalityVerdict, ...]
    reading: str
    conventions: dict[str, Any] = field(default_factory=lambda: {
        "target_fpr": TARGET_FPR, "erased_below_tpr": ERASED_BELOW,
        "acceptable_psnr_db": ACCEPTABLE_PSNR, "acceptable_similarity": ACCEPTABLE_SIMILARITY})


# -- computing ------------------------------------------------------------------------

def _damage(modality: str, row: Row, clean: Row | None) -> Damage:
    if modality == "image":
        level, ssim = row.mean_psnr, row.mean_ssim
        base, base_ssim = (clean.mean_psnr, clean.mean_ssim) if clean else (None, None)
        drop = None if level is None or base is None or not math.isfinite(base) else base - level
        ssim_drop = None if ssim is None or base_ssim is None else base_ssim - ssim
        return Damage(level, drop, ssim, ssim_drop)
    level = row.mean_similarity
    base = clean.mean_similarity if clean else None
    return Damage(level, None if level is None or base is None else base - level)


def _acceptable(modality: str, damage: Damage) -> bool:
    if damage.level is None:
        return False
    threshold = ACCEPTABLE_PSNR if modality == "image" else ACCEPTABLE_SIMILARITY
    return damage.level >= threshold


def _family(modality: str, attack: str, rows: Sequence[Row], clean: Row | None) -> FamilyResult:
    usable = [r for r in rows if r.tpr.n]
    erasing = [(r, _damage(modality, r, clean)) for r in usable if r.tpr.value < ERASED_BELOW]
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
        acceptable=any(_acceptable(modality, d) for _, d in erasing),
    )


def method_verdicts(records: Iterable[Record], label: str = "",
                    extra_fprs: Sequence[float] = EXTRA_FPRS) -> list[MethodVerdict]:
    """Per method of one run: clean operating point, ROC, and every attack family."""
    records = list(records)
    skipped: dict[tuple[str, str], dict[str, str]] = {}  # method -> attack -> reason
    for r in records:
        if r.skipped is not None:
            skipped.setdefault((r.modality, r.method), {}).setdefault(r.attack, r.skipped)
    records = [r for r in records if failure(r) is None]
    rows = summarize(records, TARGET_FPR)
    out = []
    for summary in summarize_methods(records, TARGET_FPR):
        key = (summary.modality, summary.method)
        mine = [r for r in records if (r.modality, r.method) == key]
        clean_cells = [r for r in mine if r.attack == NONE_ATTACK]
        pos = [r.p_value for r in clean_cells if r.marked]
        neg = [r.p_value for r in clean_cells if not r.marked]
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
            families=tuple(_family(summary.modality, a, rs, clean_row) for a, rs in families.items()),
            tokens_needed=tokens_needed(mine, TARGET_FPR) if summary.modality == "text" else None,
            not_run=tuple(sorted(skipped.get(key, {}).items())),
        )
        out.append(_with_reading(verdict))
    return out


def build_verdict(runs: Sequence[tuple[str, Sequence[Record]]], extra_fprs: Sequence[float] = EXTRA_FPRS) -> Verdict:
    """The verdict over one or more runs; method names get the run's name when they clash."""
    names = [r.method for _, records in runs for r in {(x.modality, x.method): x for x in records}.values()]
    clash = len(names) != len(set(names))
    methods = [v for label, records in runs for v in method_verdicts(records, label if clash else "", extra_fprs)]
    modalities = []
    for modality in sorted({m.modality for m in methods}, key=lambda m: (m != "image", m != "text", m)):
        mine = tuple(m for m in methods if m.modality == modality)
        modalities.append(ModalityVerdict(modality, mine, _modality_reading(modality, mine)))
    return Verdict(tuple(modalities), _overall_reading(modalities))


# -- readings: sentences that follow from the numbers ----------------------------------

def _pct(rate: Rate) -> str:
    return "n/a" if not rate.n else f"{100 * rate.value:.0f} %"


def _loss_text(modality: str, damage: Damage) -> str:
    if modality == "image":
        if damage.drop is None:
            return "image size changed, PSNR not defined"
        text = f"PSNR {damage.level:.1f} dB, {damage.drop:.1f} dB below the clean marked image"
        return text + (f", SSIM {damage.ssim:.2f}" if damage.ssim is not None else "")
    if damage.drop is None:
        return "similarity not measured"
    return f"similarity {damage.level:.2f}, a drop of {damage.drop:.2f}"


def _with_reading(v: MethodVerdict) -> MethodVerdict:
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
                         f"({_loss_text(v.modality, cheapest.damage)})")
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


def _modality_reading(modality: str, methods: Sequence[MethodVerdict]) -> str:
    best = _best(methods)
    if best is None:
        return f"{modality.capitalize()}: no attacked results to judge."
    share = len(best.erased_acceptably) / len(best.families)
    quality = f"PSNR >= {ACCEPTABLE_PSNR:g} dB" if modality == "image" else f"similarity >= {ACCEPTABLE_SIMILARITY:g}"
    title = {"image": "Images"}.get(modality, modality.capitalize())
    text = (f"{title}: the most robust mark, {best.method}, is erased at acceptable quality "
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
    shares = {}
    for mv in modalities:
        best = _best(mv.methods)
        if best is not None:
            shares[mv.modality] = (best, len(best.erased_acceptably) / len(best.families))
    if "image" not in shares or "text" not in shares:
        only = " and ".join({"image": "images"}.get(m, m) for m in shares) or "nothing"
        return f"Attacks on {only} only were measured: no comparison between images and text."
    (img, s_img), (txt, s_txt) = shares["image"], shares["text"]
    if abs(s_img - s_txt) < 0.1:
        relation = "about as fragile as"
    elif s_img < s_txt:
        relation = "more robust than"
    else:
        relation = "less robust than"
    return (f"At 1 % FPR, the best image mark ({img.method}) is {relation} the best text mark ({txt.method}): "
            f"{100 * s_img:.0f} % vs {100 * s_txt:.0f} % of the tested attack families erase them while the "
            f"content stays acceptable."
            + "".join(f" Not run for {m} marks: {', '.join(a for a, _ in best.not_run)}." for m, best
                      in (("image", img), ("text", txt)) if best.not_run))


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
                "target_fpr": op.target_fpr, "tpr_theory": rate_json(op.theory), "fpr_measured": rate_json(op.theory_fpr),
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


def _cost_cell(modality: str, family: FamilyResult | None) -> str:
    if family is None:
        return "not erased within the tested range"
    damage = family.damage
    if modality == "image":
        if damage.drop is None:
            return f"{family.attack} {family.erased_at}: size changed"
        return f"{family.attack} {family.erased_at}: -{damage.drop:.1f} dB" + (
            f", SSIM -{damage.ssim_drop:.2f}" if damage.ssim_drop is not None else "")
    return f"{family.attack} {family.erased_at}: similarity -{damage.drop:.2f}"


def verdict_table(verdict: Verdict) -> str:
    """Plain-text tables, one per modality, then the readings."""
    lines = []
    for mv in verdict.modalities:
        lines.append(f"== {mv.modality} ==")
        header = ("method", "TPR@1%FPR [95% CI]", "FPR", "AUC", "most robust vs", "cheapest erasure (quality cost)",
                  "erased / families")
        body = []
        for m in mv.methods:
            t = m.clean.theory
            auc_text = "n/a" if m.roc is None else f"{m.roc.auc:.3f}"
            flag = " !" if m.clean.disagree else ""
            body.append((m.method, f"{t.value:.2f} [{t.low:.2f}, {t.high:.2f}]" if t.n else "n/a",
                         f"{m.clean.theory_fpr.k}/{m.clean.theory_fpr.n}{flag}", auc_text,
                         getattr(m.most_robust, "attack", "-"),
                         "no attack measured" if not m.families else _cost_cell(mv.modality, m.cheapest)
                         if m.erased else "not erased within the tested range",
                         f"{len(m.erased)}/{len(m.families)} ({len(m.erased_acceptably)} acceptable)"))
        widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
        for row in [header, tuple("-" * w for w in widths), *body]:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        lines.append("")
        lines += [f"  {m.reading}" for m in mv.methods]
        lines.append(f"  {mv.reading}")
        lines.append("")
    lines.append(verdict.reading)
    lines.append(f"(acceptable quality: PSNR >= {ACCEPTABLE_PSNR:g} dB for images, similarity >= "
                 f"{ACCEPTABLE_SIMILARITY:g} for text; erased: TPR at 1 % FPR below {ERASED_BELOW:g}; "
                 "! = negatives fire more often than the p-values promise)")
    return "\n".join(lines)


__all__ = ["ACCEPTABLE_PSNR", "ACCEPTABLE_SIMILARITY", "Damage", "FamilyResult", "MethodVerdict",
           "ModalityVerdict", "TARGET_FPR", "Verdict", "build_verdict", "method_verdicts", "verdict_json",
           "verdict_table"]
