"""Export one row per cell, as CSV or JSON lines, for analysis outside wmbench.

Quality metrics live in one generic field of the store; here they are flattened into
one column each, in the order the run's modalities declared them (from the manifest),
so a modality plugin's new metric becomes a new column without a schema change.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

from wmbench.report.run import StoredRun
from wmbench.store import Record, json_safe

COLUMNS = ("sample", "modality", "method", "wm_key", "attack", "strength", "strength_index", "marked", "role",
           "score", "p_value", "detected", "bits_matched", "bits_total", "tokens")
TAIL = ("seconds", "error", "skipped")


def metric_names(run: StoredRun) -> list[str]:
    """Every metric of the run: declared ones in declaration order, then any other stored one."""
    declared = [spec.name for info in run.modalities.values() for spec in info.metrics]
    stored = [name for r in run.records for name in r.metrics]
    return list(dict.fromkeys(declared + stored))


def _row(record: Record, metrics: list[str]) -> dict[str, Any]:
    values = {c: getattr(record, c) for c in COLUMNS}
    values.update({m: record.metrics.get(m) for m in metrics})
    values.update({c: getattr(record, c) for c in TAIL})
    return values


def export_rows(run_dir: Path, fmt: str, out: TextIO) -> int:
    """Write every stored cell to ``out``; returns the number of rows."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown export format {fmt!r}; valid: csv, jsonl")
    run = StoredRun.load(run_dir)
    metrics = metric_names(run)
    present = [m for m in metrics if any(m in r.metrics for r in run.records)]
    header = [*COLUMNS, *present, *TAIL]
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(header)
        for record in run.records:
            row = _row(record, present)
            writer.writerow([_csv_value(row[c]) for c in header])
    else:
        for record in run.records:
            row = _row(record, present)
            out.write(json.dumps({c: json_safe(row[c]) for c in header}) + "\n")
    return len(run.records)


def _csv_value(value: object) -> object:
    """Empty for missing, lower-case booleans, lists/dicts as JSON, the rest as is."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return json_safe(value)
