"""Export one row per cell, as CSV or JSON lines, for analysis outside wmbench."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TextIO

from wmbench.store import Store, json_safe

COLUMNS = ("sample", "modality", "method", "wm_key", "attack", "strength", "strength_index", "marked",
           "score", "p_value", "detected", "bits_matched", "bits_total", "tokens", "psnr", "ssim", "perplexity",
           "similarity", "seconds", "error", "skipped")


def export_rows(run_dir: Path, fmt: str, out: TextIO) -> int:
    """Write every stored cell to ``out``; returns the number of rows."""
    store = Store(run_dir, create=False)
    try:
        n = 0
        if fmt == "csv":
            writer = csv.writer(out)
            writer.writerow(COLUMNS)
            for record in store.records():
                writer.writerow([_csv_value(getattr(record, c)) for c in COLUMNS])
                n += 1
        elif fmt == "jsonl":
            for record in store.records():
                out.write(json.dumps({c: json_safe(getattr(record, c)) for c in COLUMNS}) + "\n")
                n += 1
        else:
            raise ValueError(f"unknown export format {fmt!r}; valid: csv, jsonl")
        return n
    finally:
        store.close()


def _csv_value(value: object) -> object:
    """Empty for missing, lower-case booleans, lists/dicts as JSON, the rest as is."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return json_safe(value)
