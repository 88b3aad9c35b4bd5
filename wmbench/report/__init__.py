"""Reports: aggregate cell records into calibrated rates and render them as HTML."""

from wmbench.report.aggregate import (
    FailedCell,
    FailureGroup,
    MethodSummary,
    Row,
    failures,
    skips,
    summarize,
    summarize_methods,
)
from wmbench.report.html import render_report, write_report

__all__ = [
    "FailedCell",
    "FailureGroup",
    "MethodSummary",
    "Row",
    "failures",
    "render_report",
    "skips",
    "summarize",
    "summarize_methods",
    "write_report",
]
