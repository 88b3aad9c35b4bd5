"""The text modality's report view: one marked text of a text method, token by token.

For the method's first marked sample it shows the marked text with every token the
detector scored coloured by the keyed green list (green or red; a repeat of a
(context, token) pair already counted is dimmed, since detection scores each pair
once), the token, its context and verdict on hover, and beside it the same text
after one or two attacks of the run (by ``family`` tag: a paraphrase, then a character
edit such as a typo or homoglyph, whichever the run has), replayed as the cell did (see
:mod:`wmbench.report.examples`).

The colours come from the mark's own ``explain_tokens`` (the ``Explainable`` ability),
which uses the detector's tokens and hashes, so the green spans of a panel count
exactly the ``green`` its detection reports. The text is user data: the template
escapes every piece.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wmbench import registry
from wmbench.api import Explainable, render_template
from wmbench.types import ExampleMissing

if TYPE_CHECKING:
    from wmbench.report.examples import MethodExample
    from wmbench.suite import AttackConfig

NONE_ATTACK = "none"
PREFERRED_FAMILIES = ("paraphrase", "character")  # in this order; the run's others fill up
MAX_ATTACKS = 2


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

    def html(self) -> Any:
        return render_template(Path(__file__).parent / "templates", "textview.html", view=self)


def build_textview(example: "MethodExample") -> TextView:
    try:
        method = registry.method_instance(example.method.name, example.method.params)
    except registry.RegistryError as exc:
        return TextView(example.sample.id, (), (f"No text viewer: {exc}.",))
    if not isinstance(method, Explainable):
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


def chosen_attacks(example: "MethodExample") -> list["AttackConfig"]:
    """Up to MAX_ATTACKS replayable attacks of the run, preferred families first, each at
    its strongest measured strength."""
    def rank(a: "AttackConfig") -> int:
        family = example.attack_tags(a).get("family")
        return PREFERRED_FAMILIES.index(family) if family in PREFERRED_FAMILIES else len(PREFERRED_FAMILIES)

    usable = [a for a in example.attacks() if example.usable(a)]
    return sorted(usable, key=rank)[:MAX_ATTACKS]  # stable: the suite's order among equals


def _panel(example: "MethodExample", method: Any, text: str, title: str, attack: "AttackConfig | None",
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
    from wmbench.report.formatting import format_strength

    return format_strength(value)
