"""The ``signal`` modality's report view: one marked trace of a method, as small line plots.

wmbench calls the modality's ``viewer`` with one example per method (its first marked
sample) and puts the returned object's ``html()`` in the report. The example gives the
original, the marked item from the run cache, the run's attacks, each attack replayed
on the marked item exactly as its cell ran, and the stored cells (p-value, SNR).

Each panel draws the first ``WINDOW`` samples of the original (grey) and of the item
(coloured) as inline SVG, which the report's content-security policy allows (no
script, no external file). The template is rendered by :func:`wmbench.api.render_template`
with autoescaping on. The view is a frozen dataclass with a ``first`` field: the report
sets it on the first view of the page, which then carries the stylesheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmbench.api import render_template

TEMPLATES = Path(__file__).parent / "templates"
WINDOW = 256  # samples drawn per panel: enough to see 16 chips of the default mark
WIDTH, HEIGHT = 320, 90
MAX_ATTACKS = 3


@dataclass(frozen=True)
class Panel:
    caption: str
    original: str  # SVG polyline points
    item: str
    p_value: float | None = None  # from the stored cell
    detected: bool | None = None
    detail: str = ""


@dataclass(frozen=True)
class SignalView:
    sample: str = ""
    panels: tuple[Panel, ...] = ()
    notes: tuple[str, ...] = ()
    alpha: float = 0.01
    window: int = WINDOW
    width: int = WIDTH
    height: int = HEIGHT
    first: bool = False  # set by the report on the page's first view: it carries the stylesheet

    def html(self) -> Any:
        return render_template(TEMPLATES, "signalview.html", view=self)


def polyline(values: np.ndarray, low: float, high: float) -> str:
    """SVG points for ``values`` on the panel, ``low``..``high`` spanning its height."""
    if values.size == 0:
        return ""
    x = np.linspace(0.0, WIDTH, values.size) if values.size > 1 else np.zeros(1)
    span = (high - low) or 1.0
    y = HEIGHT - 4.0 - (np.clip(values, low, high) - low) / span * (HEIGHT - 8.0)
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y))


def _detail(record: Any) -> str:
    if record is None:
        return ""
    snr = record.metric("snr")
    return "" if snr is None else ("SNR ∞" if snr == float("inf") else f"SNR {snr:.1f} dB")


def build_view(example: Any) -> SignalView:
    notes: list[str] = []
    marked = example.marked()  # a missing marked item is the report's "No example: ..." note
    try:
        original = example.original()
    except Exception as exc:  # moved or deleted: plot the marked item against itself
        notes.append(f"No original: {exc}.")
        original = marked
    shown = original[:WINDOW]
    low, high = float(shown.min(initial=0.0)), float(shown.max(initial=0.0))
    margin = 0.15 * ((high - low) or 1.0)
    low, high = low - margin, high + margin
    base = polyline(shown, low, high)

    def panel(caption: str, item: np.ndarray, record: Any) -> Panel:
        return Panel(caption, base, polyline(item[:WINDOW], low, high),
                     None if record is None else record.p_value, None if record is None else record.detected,
                     _detail(record))

    panels = [panel("marked", marked, example.record("none", 0))]
    for attack in example.attacks()[:MAX_ATTACKS]:
        usable = example.usable(attack)  # strong -> weak
        if not usable:
            continue
        i = usable[0]
        try:
            attacked = example.attacked(marked, attack, i)
        except Exception as exc:
            notes.append(f"{attack.label}: could not be run again here ({type(exc).__name__}: {exc})")
            continue
        panels.append(panel(f"{attack.label} {attack.strengths[i]}", attacked, example.record(attack.label, i)))
    return SignalView(example.sample.id, tuple(panels), tuple(notes), alpha=example.alpha)
