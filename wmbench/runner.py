"""Run a suite: plan the cells, execute them with the chosen executor, stream results to the store.

Order of work: embed jobs first (one per sample x method x key); as each finishes, its
attack jobs are queued. Where the jobs run is the executor's business (``wmbench.executors``:
local worker processes, or a Dask cluster); either way the main process alone writes the store.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

from wmbench.cells import plan
from wmbench.errors import SuiteError
from wmbench.execute import RunContext
from wmbench.executors import RunSummary, executor_class
from wmbench.manifest import build_manifest, library_versions
from wmbench.samples import discover
from wmbench.store import Store
from wmbench.suite import Suite

__all__ = ["RunSummary", "library_versions", "run_suite"]

def run_suite(
    suite: Suite,
    run_dir: Path,
    *,
    workers: int = 1,
    resume: bool = False,
    retry_failed: bool = False,
    debug: bool = False,
    progress: Callable[[int, int], None] | None = None,
    executor: str = "local",
    scheduler: str | None = None,
) -> RunSummary:
    """Execute every missing cell of ``suite`` into ``run_dir/results.sqlite``.

    Without ``resume`` a run folder that already holds results is refused, so two
    different suites never mix in one store by accident. ``executor="dask"`` runs the
    jobs on the Dask scheduler at ``scheduler`` (None: a LocalCluster of ``workers``
    processes); the run folder must then be on a filesystem the workers share.
    """
    started = time.time()
    driver_class = executor_class(executor)  # first: one clear line if its packages (dask) are not installed
    if driver_class.shared_paths:
        run_dir = Path(run_dir).resolve()  # the cache paths in the jobs must mean the same on every worker
    if run_dir.exists() and not run_dir.is_dir():
        raise SuiteError(f"{run_dir}: --out must be a folder, and this is a file")
    run_dir.mkdir(parents=True, exist_ok=True)
    store = Store(run_dir)
    connection = None
    try:
        if store.count() and not resume:
            raise SuiteError(f"{run_dir}: already holds results; pass --resume to continue it or choose another --out")
        if resume:
            previous = store.meta().get("suite_text")
            if previous is not None and previous != suite.text:
                raise SuiteError(f"{run_dir}: was started with a different suite file; --resume needs the same one")
        if retry_failed:
            store.delete_failed()
        seconds_before = float(store.meta().get("seconds", 0.0)) if resume else 0.0
        samples = discover(suite)
        if not samples:
            raise SuiteError(f"{suite.path}: samples: the suite names no sample; "
                             f"add e.g. images = [\"builtin:images\"]")
        embed_jobs, attack_jobs = plan(suite, samples, run_dir)
        connection = driver_class.connect(scheduler, workers)  # after every check of the suite: a cluster takes seconds
        done = store.done_keys()
        total = sum(len(j.cells) for j in embed_jobs + attack_jobs)
        skipped = sum(1 for j in embed_jobs + attack_jobs for c in j.cells if c.key in done)
        store.set_meta({
            "suite_name": suite.name, "suite_path": suite.path, "suite_text": suite.text,
            "seed": suite.seed, "alpha": suite.alpha, "versions": library_versions(),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "workers": workers, "started_at": started, "samples": [s.id for s in samples],
            "executor": executor, "scheduler": scheduler,
            "command": " ".join(sys.argv),
        })
        # the resolved plan: what the report, verdict and export read instead of the suite file
        store.set_manifest(build_manifest(suite, samples, embed_jobs, run_dir))
        summary = RunSummary(run_dir, total, skipped, 0, 0, 0.0)
        ctx = RunContext(seed=suite.seed, alpha=suite.alpha, debug=debug, settings=suite.settings)
        driver_class(store, ctx, workers, suite, summary, done, progress,
                     connection=connection, run_dir=run_dir).run(embed_jobs, attack_jobs)
        summary.seconds = time.time() - started
        store.set_meta({"finished_at": time.time(), "seconds": seconds_before + summary.seconds})
        return summary
    finally:
        if connection is not None:
            connection.close()
        store.close()
