"""The HTML report: one self-contained file, readable offline and safe to open.

Self-contained means no URL at all: CSS and the small sort script are inline, the
charts are inline SVG drawn from numbers computed here. A Content-Security-Policy
in the page forbids every fetch and allows only our own script (by hash), so even
a sample named ``<script>...`` could not run code if escaping ever slipped.

Chart geometry is computed in Python but the SVG elements are written by the
Jinja template, so every label goes through autoescaping like any other text.

The page is grouped by modality: each has its own Overview table, and every table
shows one column per quality metric the modality declared (read from the run
manifest, so a third-party modality's metrics show without any change here), and
only the columns that hold a value.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from wmbench.report.aggregate import NONE_ATTACK, failures, fpr_exceeds_alpha, skips, summarize, summarize_methods
from wmbench.report.charts import roc_chart
from wmbench.report.compare import compare_runs
from wmbench.report.examples import attach_examples
from wmbench.report.formatting import (
    format_duration,
    format_number,
    format_rate,
    format_strength,
    format_time,
    quality_class,
    sort_value,
)
from wmbench.report.page import clean_value, method_views, modality_groups
from wmbench.report.run import StoredRun
from wmbench.report.verdict import build_verdict, cheapest_text

REPORT_NAME = "report.html"
DEFAULT_ALPHA = 0.01  # only used when a store has no alpha in its metadata
MAX_FAILED_CELLS_SHOWN = 50  # per error message: a run where everything fails stays small
TEMPLATES = Path(__file__).parent / "templates"

# Click a header to sort; click again to reverse. Cells carry their sort key in data-v.
_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th) {
    th.addEventListener("click", function () {
      var col = th.cellIndex, body = table.tBodies[0];
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var key = function (tr) {
        var v = tr.cells[col].getAttribute("data-v");
        var n = parseFloat(v);
        return isNaN(n) ? (v || "") : n;
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (tr) { body.appendChild(tr); });
    });
  });
});
"""


def render_report(run: StoredRun, other: StoredRun | None = None) -> str:
    """The report page as a string; ``write_report`` is this plus reading and writing files.

    ``other``: a second run to compare with, side by side.
    """
    meta, records = run.meta, run.records
    alpha = meta.get("alpha")
    alpha_known = isinstance(alpha, (int, float)) and 0 < alpha < 1
    alpha = float(alpha) if alpha_known else DEFAULT_ALPHA
    interval = str(meta.get("interval", "wilson"))
    rows = summarize(records, alpha, interval)
    summaries = summarize_methods(records, alpha, interval, prefix_attacks=run.prefix_attacks)
    groups = failures(records)
    skipped = skips(records)
    views = method_views(run, rows, summaries, alpha)
    views = attach_examples(views, run)  # gallery, text viewer: items from the run folder's cache
    modalities = modality_groups(run, views)
    verdict = build_verdict([run])
    rocs = {mv.modality: roc_chart([r for r in records if r.modality == mv.modality],
                                   [m.method for m in mv.methods]) for mv in verdict.modalities}
    context = {
        "verdict": verdict,
        "run_setup": run_setup(run),
        "comparison": compare_runs(run, other, alpha, interval) if other else None,
        "rocs": rocs,
        "meta": meta,
        "alpha": alpha,
        "alpha_known": alpha_known,
        "interval": interval,
        "methods": views,
        "modalities": modalities,
        "failures": groups,
        "failed_total": sum(len(g.cells) for g in groups),
        "skips": skipped,
        "skipped_total": sum(len(g.cells) for g in skipped),
        "cells_total": len(records),
        "samples_total": len({r.sample for r in records}),
        "attacks_total": len({r.attack for r in records if r.attack != NONE_ATTACK}),
        "max_failed_shown": MAX_FAILED_CELLS_SHOWN,
        # Okabe-Ito colours (readable with colour-vision deficiency), then two greys
        "quality_colours": ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7f7f7f", "#333333"),
        "generated_at": format_time(time.time()),
        "script": Markup(_SORT_JS),  # our own constant: nothing user-supplied reaches it
        "csp": _content_security_policy(_SORT_JS),
    }
    return _environment().get_template("report.html").render(context)


def run_setup(run: StoredRun) -> dict[str, str]:
    """What produced the numbers beyond the library versions: each modality's settings
    (the text LM, ...) and the attack parameters the suite set, from the manifest."""
    out: dict[str, str] = {}
    for info in run.modalities.values():
        if any(r.modality == info.name for r in run.records):
            out.update(info.setup)
    settings = [f"{a['label']}: " + ", ".join(f"{k} = {v}" for step in a["parameters"].values()
                                               for k, v in sorted(step.items()) if "key" not in k.lower())
                for a in run.attacks if a.get("parameters")]
    if run.attacks:
        out["Attack settings"] = "; ".join(settings) or "defaults (no attack parameters in the suite)"
    return out


def write_report(run_dir: Path, out: Path | None = None, compare: Path | None = None) -> Path:
    """Read the run's store and write its report (default ``run_dir/report.html``);
    with ``compare``, another run folder shown side by side."""
    run_dir = Path(run_dir)
    run = StoredRun.load(run_dir)
    other = StoredRun.load(Path(compare), label=Path(compare).resolve().name) if compare is not None else None
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_report(run, other), encoding="utf-8")
    tmp.replace(out)  # a browser never sees half a report
    return out


def _content_security_policy(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update({
        "strength": format_strength, "rate": format_rate, "num": format_number,
        "duration": format_duration, "time": format_time, "quality_class": quality_class,
        "sort_value": sort_value,
        "format_key": lambda css: f"k-{css}",
    })
    env.globals["fpr_exceeds_alpha"] = fpr_exceeds_alpha
    env.globals["cheapest_text"] = cheapest_text
    env.globals["clean_value"] = clean_value
    return env
