"""Rendering of report fragments that modality plugins ship (a gallery, a text viewer).

A modality's report view renders its own Jinja template with autoescaping on, so a
plugin's fragment is as safe as the page it sits in; the page inserts the result as
markup. ``first`` views carry their stylesheet once per page.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup


@cache
def _environment(folder: str) -> Environment:
    from wmbench.report.formatting import format_number, format_rate, format_strength

    env = Environment(loader=FileSystemLoader(folder), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update({"strength": format_strength, "rate": format_rate, "num": format_number})
    return env


def render_fragment(folder: Path | str, name: str, **context: Any) -> Markup:
    """``name`` from ``folder`` rendered with ``context`` (autoescaped), as page markup."""
    return Markup(_environment(str(folder)).get_template(name).render(**context))
