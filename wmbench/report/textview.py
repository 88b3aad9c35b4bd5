"""The report's text viewer: one marked text of a text method, token by token.

For the method's first marked sample it shows the marked text with every token the
detector scored coloured by the keyed green list (green or red; a repeat of a
(context, token) pair already counted is dimmed, since detection scores each pair
once), the token, its context and verdict on hover, and beside it the same text
after one or two attacks of the run (synonym, then the strongest typo or homoglyph,
whichever the run has), recomputed as the cell did (see
:mod:`wmbench.report.examples`).

The colours come from the mark's own ``explain_tokens`` (:mod:`wmbench.modalities.text.marks`),
which uses the detector's tokens and hashes, so the green spans of a panel count
exactly the ``green`` its detection reports. The text is user data: the template
escapes every piece.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wmbench import registry
from wmbench.cells import NONE_ATTACK
from wmbench.report.examples import ExampleMissing, MethodExample, RunExamples
from wmbench.suite import AttackConfig

PREFERRED_ATTACKS = ("synonym", "typo", "homoglyph")  # in this order; the run's others fill up
MAX_ATTACKS = 2
_NOT_AT_REPORT_TIME = ("llm_paraphrase",)  # a report never sends a text to a server


@dataclass(frozen=True)
class Piece:
    text: str
    css: str  # "" (not scored), "g" green, "r" red; with " d" a repeat, not scored again
    title: str


@dataclass(frozen=True)
class Panel:
    title: str
    attack: str
    strength: Any
    strength_index: int | None
    pieces: tuple[Piece, ...]
    green: int  # green tokens counted, from the explanation
    scored: int  # tokens scored, from the explanation
    p_value: float | None  # as stored for this cell
    detected: bool | None
    stored_green: int | None  # the stored detection's green count (None if not stored)

    @property
    def agrees(self) -> bool:
        return self.stored_green is None or self.stored_green == self.green


@dataclass(frozen=True)
class TextView:
    sample: str = ""
    panels: tuple[Panel, ...] = ()
    notes: tuple[str, ...] = ()
    gamma: float | None = None
    first: bool = False  # the first viewer of the page carries the stylesheet


def build_textview(run: RunExamples, label: str) -> TextView:
    try:
        example = run.example("text", label)
    except ExampleMissing as exc:
        return TextView("", (), (f"No text viewer: {exc}.",))
    method = registry.method_instance(example.method.name, example.method.params)
    if not hasattr(method, "explain_tokens"):
        return TextView(example.sample.id, (), (f"No text viewer: {example.method.name} cannot explain its "
                                                f"detection token by token.",))
    try:
        marked = example.marked()
    except ExampleMissing as exc:
        return TextView(example.sample.id, (), (f"No text viewer: {exc}.",))
    notes: list[str] = []
    panels = [_panel(example, method, marked, "marked (before any attack)", None, None)]
    for attack in chosen_attacks(example):
        i = example.usable(attack)[0]
        try:
            attacked = example.attacked(marked, attack, i)
        except Exception as exc:
            notes.append(f"{attack.label}: could not be run again here ({type(exc).__name__}: {exc})")
            continue
        panels.append(_panel(example, method, attacked, f"after {attack.label} {_strength(attack.strengths[i])}",
                             attack, i))
    if any(not p.agrees for p in panels):
        notes.append("The green count recomputed here differs from the stored detection: the detector or the "
                     "attack changed since the run.")
    return TextView(example.sample.id, tuple(panels), tuple(notes), getattr(method, "gamma", None))


def chosen_attacks(example: MethodExample) -> list[AttackConfig]:
    """Up to MAX_ATTACKS attacks of the run, preferred ones first, each at its strongest measured strength."""
    def rank(a: AttackConfig) -> int:
        name = a.label if a.label in PREFERRED_ATTACKS else a.steps[0].attack
        return PREFERRED_ATTACKS.index(name) if name in PREFERRED_ATTACKS else len(PREFERRED_ATTACKS)

    usable = [a for a in example.attacks() if example.usable(a)
              and not any(s.attack in _NOT_AT_REPORT_TIME for s in a.steps)]
    return sorted(usable, key=rank)[:MAX_ATTACKS]  # stable: the suite's order among equals


def _panel(example: MethodExample, method: Any, text: str, title: str, attack: AttackConfig | None,
           index: int | None) -> Panel:
    explained = method.explain_tokens(text, example.method.key)
    pieces = tuple(Piece(p.text, _css(p), _title(p)) for p in explained)
    counted = [p for p in explained if p.green is not None and p.counted]
    r = example.record(attack.label if attack else NONE_ATTACK, index or 0)
    stored = (r.extra or {}).get("green") if r is not None else None
    return Panel(title, attack.label if attack else NONE_ATTACK, attack.strengths[index] if attack else None, index,
                 pieces, sum(p.green for p in counted), len(counted),
                 r.p_value if r is not None else None, r.detected if r is not None else None,
                 int(stored) if isinstance(stored, (int, float)) else None)


def _css(p: Any) -> str:
    if p.green is None:
        return ""
    return ("g" if p.green else "r") + ("" if p.counted else " d")


def _title(p: Any) -> str:
    if p.green is None:
        return ""
    after = f" after “{p.context}”" if p.context is not None else ""
    verdict = "green" if p.green else "red"
    if not p.counted:
        verdict += ", already counted (not scored again)"
    return f"“{p.form}”{after}: {verdict}"


def _strength(value: Any) -> str:
    from wmbench.report.html import format_strength

    return format_strength(value)
