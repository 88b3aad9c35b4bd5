"""``wmbench check-plugin NAME``: run the attack contract on real samples.

A plugin author gets, in a few seconds and before any suite runs, the checks that the
runner otherwise only reveals as odd numbers in a report: a non-deterministic attack
makes marked and unmarked copies incomparable, an attack that edits its input in
place corrupts the cached item every later cell reads, a wrong output type fails
every cell, and a sweep listed strong -> weak draws the robustness curve backwards.

The checks call the attack exactly as the runner does (``spec(item, strength, rng)``)
on the bundled samples of its modality; nothing about the attack is changed to make
it faster, so only a few samples are used.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from wmbench import registry
from wmbench.types import AttackSpec, Modality, SkipCell

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"

# Quality may get better from one strength to a stronger one by up to this fraction
# (relative to the weaker strength's mean) before the ordering check fails: sample
# means over 2-3 items are noisy, and a sweep with a flat stretch is not wrong.
ORDER_TOLERANCE = 0.05

# The metrics that judge the ordering are those the modality declares with
# ``judges_damage`` (they get worse as damage grows for every built-in attack). Perplexity
# is shown but does not vote: typos and look-alike letters make out-of-vocabulary words,
# which *lower* an n-gram model's perplexity, so it is no measure of damage.


def judged_metrics(kind: Modality) -> dict[str, bool]:
    """Metric name -> higher is better, for the metrics that judge a sweep's order."""
    return {m.name: m.higher_is_better for m in kind.metrics if m.judges_damage}


@dataclass(frozen=True)
class Check:
    """One line of the verdict: which contract rule, PASS/FAIL/SKIP, and why."""

    name: str
    status: str
    reason: str


@dataclass
class Outcome:
    """What one attack call on one sample produced (or raised)."""

    sample: str
    index: int  # position of the strength in the sweep, weak (0) -> strong
    strength: Any
    output: Any = None
    error: BaseException | None = None
    skipped: str | None = None  # the attack raised SkipCell: it cannot run here (no endpoint, ...)
    repeat_equal: bool = True  # second call with an equally seeded rng gave the same output
    input_modified: bool = False
    quality: dict[str, float] = field(default_factory=dict)


@dataclass
class PluginReport:
    spec: AttackSpec
    samples: list[str]
    seed: int
    quality_table: list[tuple[Any, dict[str, float | None]]]
    checks: list[Check]
    judged: tuple[str, ...] = ()  # the metrics that judged the strength order
    source: str = ""  # where the samples came from ("builtin:images")

    @property
    def passed(self) -> bool:
        return all(c.status != FAIL for c in self.checks)


# --- samples ------------------------------------------------------------------------------


def builtin_kind(kind: Modality) -> Any:
    """The modality's bundled samples to mark (its first sample kind with a built-in source)."""
    return next((k for k in kind.sample_kinds if k.builtin and k.role == "item"), None)


def builtin_samples(kind: Modality, count: int) -> list[tuple[str, Any]]:
    """The first ``count`` bundled samples of a modality, loaded as the runner loads them."""
    sample_kind = builtin_kind(kind)
    if sample_kind is None:
        return []
    return [(s.id, kind.load(s.source)) for s in sample_kind.discover((sample_kind.builtin,), Path.cwd())[:count]]


# --- calling the attack -------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equal values, and for arrays the same dtype and shape too."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b)))
    try:
        return bool(a == b)
    except Exception:  # an exotic output type whose == raises: not comparable, so not equal
        return False


def _call(spec: AttackSpec, item: Any, strength: Any, seed: int) -> tuple[Any, Any]:
    """Run the attack on a private copy of ``item``; return (output, the copy afterwards)."""
    private = copy.deepcopy(item)
    return spec(private, strength, np.random.default_rng(seed)), private


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics only: a modality may add string notes (why one is missing)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and not math.isnan(float(v))}


def run_one(spec: AttackSpec, kind: Modality, sample: str, item: Any, index: int, seed: int) -> Outcome:
    """Call twice with equally seeded generators, each on its own copy of the input."""
    strength = spec.strengths[index]
    outcome = Outcome(sample=sample, index=index, strength=strength)
    try:
        outcome.output, seen = _call(spec, item, strength, seed)
        outcome.input_modified = not _same(seen, item)
        again, _ = _call(spec, item, strength, seed)
    except SkipCell as exc:  # not a bug: the runner records such a cell as skipped, too
        outcome.skipped = str(exc) or "SkipCell"
        return outcome
    except Exception as exc:  # the plugin's own bug: reported, never raised
        outcome.error = exc
        return outcome
    outcome.repeat_equal = _same(outcome.output, again)
    if kind.problem(outcome.output) is None:
        outcome.quality = _numbers(kind.measure(item, outcome.output, {"attacked": True}))
    return outcome


# --- the checks ---------------------------------------------------------------------------


def _where(o: Outcome) -> str:
    return f"sample {o.sample}, strength {o.strength!r}"


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return text[0] if text else type(exc).__name__


def _returned(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.error is None and o.skipped is None]


def _nothing_returned(outcomes: list[Outcome]) -> str:
    skipped = [o.skipped for o in outcomes if o.skipped]
    return f"the attack skipped itself: {skipped[0]}" if skipped else "no call returned"


def check_runs(outcomes: list[Outcome]) -> Check:
    bad = [o for o in outcomes if o.error is not None]
    skipped = [o for o in outcomes if o.skipped is not None]
    if bad:
        return Check("runs", FAIL, f"raised {_error_text(bad[0].error)} ({_where(bad[0])}; "
                                   f"{len(bad)} of {len(outcomes)} calls raised)")
    if len(skipped) == len(outcomes):
        return Check("runs", SKIP, _nothing_returned(outcomes))
    note = f"; {len(skipped)} skipped: {skipped[0].skipped}" if skipped else ""
    return Check("runs", PASS, f"{len(outcomes) - len(skipped)} calls on real samples returned{note}")


def check_deterministic(outcomes: list[Outcome]) -> Check:
    ran = _returned(outcomes)
    bad = [o for o in ran if not o.repeat_equal]
    if not ran:
        return Check("deterministic", SKIP, _nothing_returned(outcomes))
    if bad:
        return Check("deterministic", FAIL,
                     f"two calls with equally seeded rngs gave different outputs ({_where(bad[0])}; "
                     f"{len(bad)} of {len(ran)}): draw every random choice from `rng`")
    return Check("deterministic", PASS, f"equally seeded rngs gave identical outputs ({len(ran)} pairs)")


def check_input_untouched(outcomes: list[Outcome]) -> Check:
    ran = _returned(outcomes)
    bad = [o for o in ran if o.input_modified]
    if not ran:
        return Check("input untouched", SKIP, _nothing_returned(outcomes))
    if bad:
        return Check("input untouched", FAIL,
                     f"the input was modified in place ({_where(bad[0])}; {len(bad)} of {len(ran)}): "
                     "work on a copy, e.g. `out = image.copy()`")
    return Check("input untouched", PASS, f"the input equals its copy after every call ({len(ran)})")


def check_output_type(outcomes: list[Outcome], kind: Modality) -> Check:
    ran = _returned(outcomes)
    bad = [(o, kind.problem(o.output)) for o in ran if kind.problem(o.output)]
    if not ran:
        return Check("output type", SKIP, _nothing_returned(outcomes))
    if bad:
        o, problem = bad[0]
        return Check("output type", FAIL, f"{problem} ({_where(o)}; {len(bad)} of {len(ran)})")
    return Check("output type", PASS, f"every output is {kind.contract} ({len(ran)})")


class _Skipped(Exception):
    """The attack raised SkipCell on a degenerate input."""


def _empty_case(spec: AttackSpec, kind: Modality, item: Any, label: str, strength: Any, seed: int,
                allowed: tuple[type[BaseException], ...]) -> str | None:
    """Why the attack mishandles this degenerate input, or None if it copes."""
    try:
        out, _ = _call(spec, item, strength, seed)
    except SkipCell as exc:
        raise _Skipped(str(exc)) from None
    except allowed as exc:
        return None if str(exc).strip() else (f"raised {type(exc).__name__} without a message on {label} "
                                              f"at strength {strength!r}: say why in the message")
    except Exception as exc:
        rule = (f"only {' or '.join('a ' + a.__name__ for a in allowed)} with a message may be raised" if allowed
                else f"{label} must come back as {kind.contract}")
        return f"raised {_error_text(exc)} on {label} at strength {strength!r}: {rule}"
    problem = kind.problem(out)
    return f"{problem} on {label} at strength {strength!r}" if problem else None


def check_empty_input(spec: AttackSpec, kind: Modality, seed: int) -> Check:
    """The modality's degenerate inputs (text: ""; image: 1x1 and 8x8) must give an item of
    the contract's type, or one of the exceptions the modality allows, with a message
    (the runner records it as that cell's error)."""
    edge = list(kind.edge_cases())
    if not edge:
        return Check("empty input", SKIP, f"the {kind.name} modality declares no degenerate inputs")
    cases = [(e.label, e.item, e.allowed) for e in edge]
    allowed_names = sorted({a.__name__ for e in edge for a in e.allowed})
    passed = (f"{' and '.join(e.label for e in edge)} give{'s' if len(edge) == 1 else ''} {kind.contract}"
              + (f" or a {'/'.join(allowed_names)} with a message" if allowed_names else "") + " at every strength")
    skipped = []
    for label, item, allowed in cases:
        for strength in spec.strengths:
            try:
                problem = _empty_case(spec, kind, item, label, strength, seed, allowed)
            except _Skipped as exc:
                skipped.append(str(exc))
                continue
            if problem:
                return Check("empty input", FAIL, problem)
    if len(skipped) == len(cases) * len(spec.strengths):
        return Check("empty input", SKIP, f"the attack skipped itself: {skipped[0]}")
    return Check("empty input", PASS, passed)


def mean_quality(outcomes: list[Outcome], strengths: tuple[Any, ...],
                 order: Sequence[str] = ()) -> list[tuple[Any, dict[str, float | None]]]:
    """Mean of each metric per strength over the samples where it was measured."""
    metrics = sorted({m for o in outcomes for m in o.quality}, key=lambda m: _metric_order(m, order))
    table = []
    for i, strength in enumerate(strengths):
        at = [o for o in outcomes if o.index == i]
        row: dict[str, float | None] = {}
        for m in metrics:
            values = [o.quality[m] for o in at if m in o.quality]
            row[m] = float(np.mean(values)) if values else None
        table.append((strength, row))
    return table


def _metric_order(name: str, order: Sequence[str]) -> tuple[int, str]:
    return (list(order).index(name) if name in order else len(order), name)


def _clearly_better(stronger: float, weaker: float) -> bool:
    """Is the stronger strength's quality above the weaker's by more than the tolerance?

    PSNR is infinite for an unchanged image: a stronger strength that changes nothing
    after a weaker one that did is a clear rise; two infinities are a tie.
    """
    if math.isinf(weaker) or math.isinf(stronger):
        return stronger > weaker
    return stronger > weaker + ORDER_TOLERANCE * abs(weaker)


Rise = tuple[Any, float, Any, float]  # weaker strength, its mean, stronger strength, its mean


def order_violations(table: list[tuple[Any, dict[str, float | None]]], judged: dict[str, bool]) -> dict[str, Rise]:
    """Per judged metric, the first (weaker, stronger) pair whose quality clearly rises;
    every pair is compared, not only neighbours, so a slow climb is caught too.
    ``judged``: metric -> higher is better (a lower-is-better metric is compared negated)."""
    found: dict[str, Rise] = {}
    for metric, higher in judged.items():
        sign = 1.0 if higher else -1.0
        column = [(s, q) for s, row in table if (q := row.get(metric)) is not None]
        for i, (weak, qw) in enumerate(column):
            hit = next(((s, qs) for s, qs in column[i + 1:] if _clearly_better(sign * qs, sign * qw)), None)
            if hit is not None:
                found[metric] = (weak, qw, *hit)
                break
    return found


def _unjudged_reason(table: list[tuple[Any, dict[str, float | None]]], judged: dict[str, bool]) -> str:
    measured = sorted({m for _, row in table for m, v in row.items() if v is not None})
    if measured:
        return (f"only {', '.join(measured)} measured, which does not judge damage "
                "(is the model behind the other metrics installed?)")
    return f"not measurable: no value of {', '.join(judged) or 'any metric'} (e.g. a metric that needs the " \
           f"output at the input's size)"


def check_strength_order(table: list[tuple[Any, dict[str, float | None]]], judged: dict[str, bool],
                         unmeasured: str | None = None) -> Check:
    """PASS unless a judged metric clearly rises from a weaker to a stronger strength.

    ``unmeasured`` says why no output could be measured at all (the checks above fail
    or skip for that reason too)."""
    present = [m for m in judged if any(row.get(m) is not None for _, row in table)]
    tol = f"tolerance {ORDER_TOLERANCE:.0%} of the weaker strength's mean"
    if len(table) < 2:
        return Check("strength order", SKIP, "only one strength: nothing to order")
    if unmeasured or not present:
        return Check("strength order", SKIP, unmeasured or _unjudged_reason(table, judged))
    bad = order_violations(table, {m: judged[m] for m in present})
    if bad:
        (metric, (weak, qw, strong, qs)), *others = bad.items()
        also = f" (also {', '.join(m for m, _ in others)})" if others else ""
        return Check("strength order", FAIL,
                     f"quality rises with strength: {metric} {_fmt(qw)} at {weak!r} -> {_fmt(qs)} at {strong!r}"
                     f"{also}; {tol}; list strengths weak -> strong")
    return Check("strength order", PASS, f"quality ({', '.join(present)}) does not rise from weak to strong ({tol})")


# --- putting it together ------------------------------------------------------------------


def _unmeasured(outcomes: list[Outcome], kind: Modality) -> str | None:
    returned = _returned(outcomes)
    if not returned:
        return _nothing_returned(outcomes)
    if all(kind.problem(o.output) for o in returned):
        return "no output of the right type to measure"
    return None


def check_attack(name: str, samples: int = 2, seed: int = 0) -> PluginReport:
    """Run every check on ``samples`` bundled samples; raises RegistryError for a bad name."""
    spec = registry.get_attack(name)
    kind = registry.get_modality(spec.modality)
    items = builtin_samples(kind, samples)
    outcomes = [run_one(spec, kind, sample_id, item, i, seed)
                for sample_id, item in items for i in range(len(spec.strengths))]
    table = mean_quality(outcomes, spec.strengths, [m.name for m in kind.metrics])
    judged = judged_metrics(kind)
    checks = [check_runs(outcomes), check_deterministic(outcomes), check_input_untouched(outcomes),
              check_output_type(outcomes, kind), check_empty_input(spec, kind, seed),
              check_strength_order(table, judged, _unmeasured(outcomes, kind))]
    sample_kind = builtin_kind(kind)
    return PluginReport(spec=spec, samples=[s for s, _ in items], seed=seed, quality_table=table,
                        checks=checks, judged=tuple(judged), source=sample_kind.builtin if sample_kind else "none")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def _quality_lines(table: list[tuple[Any, dict[str, float | None]]], judged: Sequence[str]) -> list[str]:
    present = {m for _, row in table for m, v in row.items() if v is not None}
    metrics = [m for _, row in table[:1] for m in row if m in present] or sorted(present)
    if not metrics:
        return ["quality: not measured (see the strength order check)"]
    header = ["strength", *metrics]
    rows = [[repr(s) if isinstance(s, str) else str(s), *(_fmt(row.get(m)) for m in metrics)]
            for s, row in table]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["mean quality per strength, weak -> strong, against the unattacked samples:"]
    for r in [header, *rows]:
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    unjudged = [m for m in metrics if m not in judged]
    if unjudged:
        lines.append(f"  ({', '.join(unjudged)}: shown, not used for the order check)")
    return lines


def format_report(report: PluginReport) -> str:
    """What a user reads: the attack, its quality table, one line per check, a summary."""
    spec = report.spec
    lines = [f"attack {spec.name} ({spec.modality}) from {spec.source}",
             f"samples: {', '.join(report.samples)} ({report.source}), seed {report.seed}", "",
             *_quality_lines(report.quality_table, report.judged), ""]
    width = max(len(c.name) for c in report.checks)
    lines += [f"{c.status}  {c.name.ljust(width)}  {c.reason}" for c in report.checks]
    failed = [c.name for c in report.checks if c.status == FAIL]
    passed = sum(c.status == PASS for c in report.checks)
    skipped = sum(c.status == SKIP for c in report.checks)
    summary = f"{spec.name}: {passed} passed, {len(failed)} failed" + (f", {skipped} skipped" if skipped else "")
    lines += ["", summary + (f" ({', '.join(failed)})" if failed else "")]
    return "\n".join(lines)
