"""Run a suite: plan the cells, execute them in worker processes, stream results to the store.

Order of work: embed jobs first (one per sample x method x key); as each finishes, its
attack jobs are queued. Costly methods (rivaGan) are queued first so the slowest jobs
do not end up alone on one core at the end of the run.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

from wmbench import registry
from wmbench.cells import Job, plan
from wmbench.execute import RunContext, failed_job, limit_threads, run_job
from wmbench.samples import discover_images
from wmbench.store import Record, Store
from wmbench.suite import Suite

VERSIONED_PACKAGES = ("wmbench", "invisible-watermark", "numpy", "scipy", "pillow", "scikit-image",
                      "opencv-python", "onnxruntime", "torch")


@dataclass
class RunSummary:
    run_dir: Path
    total_cells: int
    skipped_cells: int  # already in the store (resume)
    new_cells: int
    failed_cells: int
    seconds: float
    errors: list[str] = field(default_factory=list)


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _exit_with_parent(parent_pid: int) -> None:
    """Stop this worker once the main process is gone.

    After a ``kill -9`` of the main process, forked workers would otherwise wait on
    their task queue forever (their siblings keep the pipe open, so no EOF comes).
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="wmbench-parent-watch", daemon=True).start()


def _init_worker(threads: int, plugin_folders: tuple[str, ...], parent_pid: int) -> None:
    _exit_with_parent(parent_pid)
    limit_threads(threads)
    for folder in plugin_folders:  # a spawned worker starts with an empty registry
        registry.load_plugin_folder(folder)


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def run_suite(
    suite: Suite,
    run_dir: Path,
    *,
    workers: int = 1,
    resume: bool = False,
    debug: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Execute every missing cell of ``suite`` into ``run_dir/results.sqlite``.

    Without ``resume`` a run folder that already holds results is refused, so two
    different suites never mix in one store by accident.
    """
    from wmbench.errors import SuiteError

    started = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    store = Store(run_dir)
    try:
        if store.count() and not resume:
            raise SuiteError(f"{run_dir}: already holds results; pass --resume to continue it or choose another --out")
        if resume:
            previous = store.meta().get("suite_text")
            if previous is not None and previous != suite.text:
                raise SuiteError(f"{run_dir}: was started with a different suite file; --resume needs the same one")
        samples = discover_images(suite.image_sources, suite.base_dir)
        embed_jobs, attack_jobs = plan(suite, samples, run_dir)
        done = store.done_keys()
        total = sum(len(j.cells) for j in embed_jobs + attack_jobs)
        skipped = sum(1 for j in embed_jobs + attack_jobs for c in j.cells if c.key in done)
        store.set_meta({
            "suite_name": suite.name, "suite_path": suite.path, "suite_text": suite.text,
            "seed": suite.seed, "alpha": suite.alpha, "versions": library_versions(),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "workers": workers, "started_at": started, "samples": [s.id for s in samples],
            "command": " ".join(sys.argv),
        })
        summary = RunSummary(run_dir, total, skipped, 0, 0, 0.0)
        ctx = RunContext(seed=suite.seed, alpha=suite.alpha, debug=debug)
        _Executor(store, ctx, workers, suite, summary, done, progress).run(embed_jobs, attack_jobs)
        summary.seconds = time.time() - started
        meta = store.meta()
        store.set_meta({"finished_at": time.time(),
                        "seconds": meta.get("seconds_before_resume", 0) + summary.seconds})
        return summary
    finally:
        store.close()


class _Executor:
    """Drives jobs through a process pool (or in-process for one worker)."""

    def __init__(self, store: Store, ctx: RunContext, workers: int, suite: Suite, summary: RunSummary,
                 done: set[str], progress: Callable[[int, int], None] | None) -> None:
        self.store, self.ctx, self.workers, self.suite = store, ctx, workers, suite
        self.summary, self.done, self.progress = summary, done, progress
        self.finished = summary.skipped_cells

    def _todo(self, job: Job) -> Job | None:
        missing = tuple(c for c in job.cells if c.key not in self.done)
        return Job(job.sample, job.method, job.attack, missing, job.marked_cache) if missing else None

    def _store(self, records: list[Record]) -> None:
        self.store.add(records)
        new = [r for r in records if r.cell_key not in self.done]
        self.done.update(r.cell_key for r in new)
        self.summary.new_cells += len(new)
        failed = [r for r in new if r.error]
        self.summary.failed_cells += len(failed)
        for r in failed[:1]:
            if len(self.summary.errors) < 20:
                self.summary.errors.append(f"{r.sample} / {r.method} / {r.attack}: {r.error.splitlines()[0]}")
        self.finished += len(new)
        if self.progress:
            self.progress(self.finished, self.summary.total_cells)

    def run(self, embed_jobs: list[Job], attack_jobs: list[Job]) -> None:
        if self.progress:
            self.progress(self.finished, self.summary.total_cells)
        cost = lambda j: -registry.get_method(j.method.name).relative_cost  # noqa: E731
        followers: dict[tuple[str, str, str], list[Job]] = {}
        for job in attack_jobs:
            todo = self._todo(job)
            if todo:
                followers.setdefault(job.embed_id, []).append(todo)
        first: list[Job] = []
        for job in sorted(embed_jobs, key=cost):
            todo = self._todo(job)
            needs_cache = job.embed_id in followers and not Path(job.marked_cache).is_file()
            if todo or needs_cache:
                first.append(todo or job)
            else:  # embedded in an earlier run: its attack jobs can start at once
                first.extend(followers.pop(job.embed_id, []))
        if self.workers <= 1:
            limit_threads(threads_per_worker(1))
            self._run_serial(first, followers)
        else:
            self._run_pool(first, followers)

    def _after_embed(self, job: Job, records: list[Record], followers: dict) -> list[Job]:
        """Attack jobs unlocked by a finished embed, or their error records if it failed."""
        if job.attack is not None:
            return []
        nexts = followers.pop(job.embed_id, [])
        if nexts and not Path(job.marked_cache).is_file():
            error = next((r.error for r in records if r.error), "embedding produced no image")
            for follower in nexts:
                self._store(failed_job(follower, error))
            return []
        return nexts

    def _run_serial(self, first: list[Job], followers: dict) -> None:
        queue = list(first)
        while queue:
            job = queue.pop(0)
            records = run_job(job, self.ctx)
            self._store(records)
            queue.extend(self._after_embed(job, records, followers))

    def _run_pool(self, first: list[Job], followers: dict) -> None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        plugin_folders = tuple(str(p) for p in self.suite.plugins)
        with ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context(method),
            initializer=_init_worker,
            initargs=(threads_per_worker(self.workers), plugin_folders, os.getpid()),
        ) as pool:
            pending: dict[Future, Job] = {pool.submit(run_job, job, self.ctx): job for job in first}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = pending.pop(future)
                    try:
                        records = future.result()
                    except Exception as exc:  # the worker process itself died
                        records = failed_job(job, f"worker crashed: {type(exc).__name__}: {exc}")
                    self._store(records)
                    for nxt in self._after_embed(job, records, followers):
                        pending[pool.submit(run_job, nxt, self.ctx)] = nxt
