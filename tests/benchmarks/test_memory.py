"""Memory: the main process's peak stays flat as a suite grows (issue 7, "Speed and scale").

A cheap suite is run at two sizes, ~2,500 and ~10,000 cells, each in a fresh
interpreter, and the peak resident memory of that (main) process is compared. The
cells are real cells (the ``lexical`` mark on the built-in human texts, detection,
perplexity, similarity, one SQLite row each) under a plugin attack that returns its
text unchanged, so a cell costs milliseconds and what grows with the suite is the
planner's, runner's and store's state, not the work. With ``--benchmark-enable``
(``make bench``) the peaks are asserted: peak(10k) / peak(2.5k) < ``RATIO_GOAL``;
disabled (the default, as in CI) a tiny pair of runs checks the harness.

``local`` with one worker runs every job inside the main process (the strictest case:
everything the run holds is in that one process); with two workers, and with ``dask``
on a LocalCluster of two workers, the main process keeps the plan, the jobs in flight
and the store (and, for dask, the client and the LocalCluster's scheduler).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wmbench.modalities.text.io import discover_texts

RATIO_GOAL = 1.15
STRENGTHS = 10  # per attack row
# 24 built-in texts x (1 clean + labels x 10 strengths) x (marked, unmarked)
FULL_SIZES = {"small": 5, "large": 21}  # 2,448 and 10,128 cells
SMOKE_SIZES = {"small": 1, "large": 2}  # with max_samples = 1: 22 and 42 cells
HANG_TIMEOUT = 900.0

PLUGIN = '''
from wmbench.api import attack


@attack("noop_text_mem", modality="text", strengths=[0.0])
def noop_text_mem(text, strength, rng):
    """Return the text unchanged (a memory benchmark's cheapest cell)."""
    return text
'''

# Runs in a fresh interpreter: the suite, then one JSON line with its memory figures.
CHILD = r'''
import json, resource, sys, time
from pathlib import Path

from wmbench.runner import run_suite
from wmbench.suite import load_suite


def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * __import__("os").sysconf("SC_PAGE_SIZE") / 2**20


suite_path, run_dir, executor, workers = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
marks = {}


def progress(done, total):
    if total and "tenth" not in marks and done >= total // 10:
        marks["tenth"] = (done, rss_mb())


started = time.perf_counter()
summary = run_suite(load_suite(suite_path), run_dir, workers=workers, executor=executor, progress=progress)
print(json.dumps({
    "cells": summary.new_cells, "failed": summary.failed_cells, "errors": summary.errors[:3],
    "seconds": round(time.perf_counter() - started, 2),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "rss_at_tenth_mb": round(marks.get("tenth", (0, float("nan")))[1], 1),
    "cells_at_tenth": marks.get("tenth", (0, 0))[0], "rss_end_mb": round(rss_mb(), 1),
}))
'''


def memory_suite(folder: Path, labels: int, max_samples: int | None) -> Path:
    """lexical on the built-in texts, ``labels`` rows of the no-op attack x STRENGTHS strengths."""
    (folder / "plugins").mkdir(parents=True, exist_ok=True)
    (folder / "plugins" / "noop_text_mem.py").write_text(PLUGIN, encoding="utf-8")
    lines = ['plugins = ["plugins"]', "", "[suite]", 'name = "memory"', "seed = 1", "alpha = 0.01", "",
             "[samples]", 'texts = ["builtin:texts"]', "", "[[methods]]", 'name = "lexical"', 'key = "mem"']
    if max_samples is not None:
        lines.append(f"max_samples = {max_samples}")
    lines.append("")
    for i in range(labels):
        strengths = [round(0.001 * j + i, 4) for j in range(STRENGTHS)]
        lines += ["[[attacks]]", 'name = "noop_text_mem"', f'label = "noop_{i}"', f"strengths = {strengths}", ""]
    path = folder / "suite.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run_child(suite: Path, run_dir: Path, executor: str, workers: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(suite), str(run_dir), executor, str(workers)],
                          capture_output=True, text=True, timeout=HANG_TIMEOUT, env=env, cwd=suite.parent,
                          check=False)
    if proc.returncode != 0:
        pytest.fail(f"{executor} run of {suite} failed ({proc.returncode}): {proc.stderr[-3000:]}", pytrace=False)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.benchmark(group="memory")
@pytest.mark.parametrize("executor,workers", [
    ("local", 1),
    pytest.param("local", 2, marks=pytest.mark.slow),
    pytest.param("dask", 2, marks=pytest.mark.slow),
])
def test_peak_memory_is_flat_as_the_suite_grows(benchmark: Any, bench_enabled: bool, tmp_path: Path,
                                               executor: str, workers: int) -> None:
    if executor == "dask":
        pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install 'wmbench[dask]')")
    sizes, max_samples = (FULL_SIZES, None) if bench_enabled else (SMOKE_SIZES, 1)
    texts = len(discover_texts(("builtin:texts",), tmp_path))
    texts = texts if max_samples is None else min(texts, max_samples)
    suites = {name: memory_suite(tmp_path / name, labels, max_samples) for name, labels in sizes.items()}

    def both() -> dict[str, dict[str, Any]]:
        return {name: run_child(suite, tmp_path / name / "run", executor, workers) for name, suite in suites.items()}

    runs = benchmark.pedantic(both, rounds=1, iterations=1)
    for name, labels in sizes.items():
        run = runs[name]
        assert run["failed"] == 0, run["errors"]
        assert run["cells"] == texts * 2 * (1 + labels * STRENGTHS), run
    small, large = runs["small"], runs["large"]
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    info = {
        "executor": executor, "workers": workers, "cells": [small["cells"], large["cells"]],
        "peak_rss_mb": [small["peak_rss_mb"], large["peak_rss_mb"]], "peak_ratio": round(ratio, 3),
        "rss_growth_after_first_tenth_mb": [round(r["rss_end_mb"] - r["rss_at_tenth_mb"], 1) for r in (small, large)],
        "seconds": [small["seconds"], large["seconds"]],
    }
    benchmark.extra_info.update(info)
    title = f"memory, {executor} x{workers}" + ("" if bench_enabled else " SMOKE, not a measurement")
    print(f"\n[{title}] " + ", ".join(f"{k}={v}" for k, v in info.items()))
    if bench_enabled:
        assert ratio < RATIO_GOAL, (
            f"peak RSS of the main process grew {ratio:.2f}x from {small['cells']} to {large['cells']} cells "
            f"({small['peak_rss_mb']} MB -> {large['peak_rss_mb']} MB; goal < {RATIO_GOAL}x)")
