"""Value formatting for the report (registered as template filters too)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from wmbench.stats import Rate
from wmbench.types import MetricSpec

def format_strength(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def format_rate(r: Rate, digits: int = 2) -> str:
    if not r.n:
        return "n/a"
    return f"{r.value:.{digits}f} [{r.low:.{digits}f}, {r.high:.{digits}f}]"


def format_number(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}f}"


def format_duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "—"
    total = int(round(seconds))
    if total < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_time(epoch: Any) -> str:
    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    return "—" if epoch is None else str(epoch)


def quality_class(value: float | None, spec: MetricSpec) -> str:
    """Colour of a metric cell: poor below the metric's acceptable level, good at or above it."""
    if value is None or math.isnan(value):
        return ""
    acceptable = spec.acceptable_at(value)
    return "" if acceptable is None else "q-good" if acceptable else "q-poor"


def sort_value(value: float | None) -> str:
    """data-v for a numeric cell: missing values sort before every number."""
    if value is None or math.isnan(value):
        return "-1e308"
    if math.isinf(value):
        return "1e308" if value > 0 else "-1e308"
    return repr(value)


