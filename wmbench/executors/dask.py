"""Scale-out: run a suite's jobs on a Dask distributed cluster (``wmbench run --executor dask``).

The Dask side only computes: each task is one job (``execute.run_job``) and returns its
Records; the main process stores them, releases the job's followers and submits more,
exactly as with the local process pool (``wmbench.executors.JobDriver``), so ``--resume`` and the
store's crash safety are the same. At most ``IN_FLIGHT_PER_THREAD`` x the cluster's
threads jobs are submitted at once, so the main process's memory does not grow with the
suite and progress is live.

Workers need the same wmbench and plugin packages as this machine, and see the run
folder (embed jobs write the marked items to ``RUN_DIR/cache``, later jobs read them)
and the suite's plugin folders at the same paths: a shared filesystem. Both are checked
on every worker before the first job.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmbench.errors import WmbenchError

try:
    import distributed
except ImportError as exc:  # an optional extra
    raise WmbenchError(f'--executor dask: needs Dask distributed ({exc}); install it with '
                       f'pip install "wmbench[dask]"') from None

import wmbench
from wmbench import registry
from wmbench.cells import Job
from wmbench.execute import RunContext, failed_job, limit_threads, run_job
from wmbench.executors.base import Followers, JobDriver
from wmbench.samples import source_file
from wmbench.store import Record

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler
WORKERS_TIMEOUT = 60.0  # seconds to wait for --workers workers to join a remote scheduler
IN_FLIGHT_PER_THREAD = 2  # jobs submitted at once per worker thread of the cluster
LIMIT_REFRESH_SECONDS = 5.0  # how often the in-flight limit follows workers joining or leaving
PROBE_FILE = ".wmbench-dask-probe"
PROBE_TIMEOUT = 300.0  # seconds for a worker to import wmbench and the plugins (torch included)


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker process needs before its first job."""

    plugin_folders: tuple[str, ...]
    run_dir: str
    token: str  # written by the main process into RUN_DIR/PROBE_FILE: proof the worker sees the folder


class DaskConnection:
    """A client of a remote scheduler, or of a LocalCluster started for this run."""

    def __init__(self, scheduler: str | None, workers: int) -> None:
        self.cluster: Any = None
        self.scheduler = scheduler
        if scheduler is None:
            self.cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                    dashboard_address=":0", preload=[__name__])
            try:
                self.client = distributed.Client(self.cluster, set_as_default=False)
            except BaseException:
                self.cluster.close()
                raise
            self.where = "a LocalCluster"
            return
        _check_reachable(scheduler)
        try:
            self.client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise WmbenchError(f"--scheduler {scheduler}: no Dask scheduler answered there ({exc})") from None
        try:
            self.client.wait_for_workers(workers, timeout=WORKERS_TIMEOUT)
        except TimeoutError:
            joined = len(self.client.nthreads())
            self.close()
            raise WmbenchError(f"--scheduler {scheduler}: only {joined} of {workers} worker(s) joined within "
                               f"{WORKERS_TIMEOUT:.0f} s (start workers with `dask worker {scheduler}`, "
                               f"or lower --workers)") from None
        self.where = f"the Dask scheduler at {scheduler}"

    def threads(self) -> int:
        return sum(self.client.nthreads().values())

    def describe(self) -> str:
        nthreads = self.client.nthreads()
        place = f"at {self.scheduler}" if self.scheduler else "in a LocalCluster"
        return f"{len(nthreads)} Dask worker(s) ({sum(nthreads.values())} thread(s)) {place}"

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _check_reachable(scheduler: str) -> None:
    """A bad or unreachable address is one clear line within CONNECT_TIMEOUT.

    Checked before a Client is made: a Client that failed to start hangs on garbage
    collection, and one whose peer accepts the connection but never answers (not a
    Dask scheduler) waits forever for the handshake.
    """
    from distributed.comm.addressing import get_address_host_port, parse_address

    try:
        host, port = get_address_host_port(scheduler)
    except ValueError as exc:
        raise WmbenchError(f"--scheduler {scheduler}: not a Dask scheduler address ({exc}); "
                           f"expected e.g. tcp://HOST:8786") from None
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise WmbenchError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({reason})") from None
    if parse_address(scheduler)[0] != "tcp":
        return  # tls/ws need the Client's security settings to shake hands

    async def handshake() -> None:
        comm = await distributed.comm.connect(scheduler, timeout=CONNECT_TIMEOUT)
        await comm.close()

    try:
        asyncio.run(asyncio.wait_for(handshake(), CONNECT_TIMEOUT))
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, nothing there speaks Dask
        reason = "no answer" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        raise WmbenchError(f"--scheduler {scheduler}: no Dask scheduler answered there within "
                           f"{CONNECT_TIMEOUT:.0f} s ({reason})") from None


class DaskExecutor(JobDriver):
    """Runs the jobs as Dask tasks; the main process stores their records as they come."""

    shared_paths = True  # the cache paths in the jobs must mean the same on every worker
    connection: DaskConnection
    run_dir: Path

    @classmethod
    def connect(cls, scheduler: str | None, workers: int) -> DaskConnection:
        return DaskConnection(scheduler, workers)

    def execute(self, first: list[Job], followers: Followers) -> None:
        self.sample_files = sorted({source_file(job.sample.source) for job in first}
                                   | {source_file(job.sample.source) for jobs in followers.values() for job in jobs})
        probe = self.run_dir / PROBE_FILE
        setup = WorkerSetup(tuple(str(p) for p in self.suite.plugins), str(self.run_dir), secrets.token_hex(16))
        probe.write_text(setup.token, encoding="ascii")
        try:
            self._check_workers(setup)
            self.summary.ran_on = self.connection.describe()
            self._run(first, followers, setup)
        finally:
            probe.unlink(missing_ok=True)

    def _check_workers(self, setup: WorkerSetup) -> None:
        """Every worker sees the run folder and plugin folders and has every method and attack."""
        client = self.connection.client
        workers = list(client.nthreads())
        if not workers:
            raise WmbenchError(f"{self.connection.where}: has no workers")
        futures = [client.submit(probe_worker, setup, self.sample_files, key=f"wmbench-probe-{setup.token}-{i}",
                                 workers=[w], allow_other_workers=False, pure=False) for i, w in enumerate(workers)]
        needed_attacks = {step.attack for a in self.suite.attacks for step in a.steps}
        needed_methods = {m.name for m in self.suite.methods}
        for worker, future in zip(workers, futures):
            try:
                found = future.result(timeout=PROBE_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - one line naming the worker
                raise WmbenchError(f"dask worker {worker}: could not prepare for the run "
                                   f"({type(exc).__name__}: {exc})") from None
            if found["problem"]:
                raise WmbenchError(f"dask worker {worker}: {found['problem']}")
            if found["version"] != wmbench.__version__:
                raise WmbenchError(f"dask worker {worker}: runs wmbench {found['version']}, this machine "
                                   f"{wmbench.__version__}; install the same version on the workers")
            for kind, needed in (("attack", needed_attacks), ("method", needed_methods)):
                missing = sorted(needed - set(found[kind + "s"]))
                if missing:
                    raise WmbenchError(f"dask worker {worker}: {kind} {missing[0]!r} is not installed there; "
                                       f"workers need the same plugin packages as this machine")

    def _run(self, first: list[Job], followers: Followers, setup: WorkerSetup) -> None:
        """Keep up to ``_limit()`` jobs in flight; a job Dask gave up on is retried alone.

        Dask fails a task (KilledWorker) once the workers it was on have died a few
        times, and a task merely queued on a dying worker counts as a suspect too. So,
        as with the local pool, each such job runs again with nothing else in flight:
        the one that kills its workers then is recorded as failed, the others complete.
        """
        client = self.connection.client
        ready, suspects = deque(first), deque()
        in_flight: dict[Any, tuple[Job, bool]] = {}  # future -> (job, submitted alone)
        finished = distributed.as_completed(loop=client.loop)
        limit, refreshed = self._limit(), time.monotonic()
        submitted = 0

        def submit(job: Job, alone: bool) -> None:
            nonlocal submitted
            submitted += 1
            future = client.submit(run_job_on_worker, job, self.ctx, setup, pure=False,
                                   key=f"wmbench-{job.attack_label}-{setup.token[:8]}-{submitted}")
            in_flight[future] = (job, alone)
            finished.add(future)

        try:
            while ready or in_flight or suspects:
                if suspects:
                    if not in_flight:
                        submit(suspects.popleft(), alone=True)
                else:
                    while ready and len(in_flight) < limit:
                        submit(ready.popleft(), alone=False)
                future = next(finished)
                job, alone = in_flight.pop(future)
                records = self._records(job, future, alone)
                future.release()
                if records is None:
                    suspects.append(job)
                    continue
                ready.extend(self.finish(job, records, followers))
                if time.monotonic() - refreshed > LIMIT_REFRESH_SECONDS:
                    limit, refreshed = self._limit(), time.monotonic()
        except BaseException:  # Ctrl-C, a lost scheduler or a bug: leave nothing running on the cluster
            try:
                client.cancel(list(in_flight), force=True)
            except Exception:  # noqa: BLE001, S110 - the scheduler may be gone already
                pass
            raise

    def _limit(self) -> int:
        return max(2, IN_FLIGHT_PER_THREAD * self.connection.threads())

    def _records(self, job: Job, future: Any, alone: bool) -> list[Record] | None:
        """The job's records; None for a job to retry alone (its workers died)."""
        try:
            return future.result()
        except distributed.client.FutureCancelledError:
            raise WmbenchError(f"{self.connection.where}: a job was cancelled (the scheduler or the connection "
                               f"to it was lost); finished cells are saved, continue with --resume") from None
        except distributed.KilledWorker:
            if not alone:
                return None
            return failed_job(job, "worker process died while running this job "
                                   "(out of memory, or a crash in native code)")
        except Exception as exc:  # noqa: BLE001 - recorded in the job's cells, the run goes on
            return failed_job(job, f"{type(exc).__name__}: {exc}")


# -- in the worker processes ----------------------------------------------------------------

def dask_setup(worker: Any) -> None:
    """Preload of the LocalCluster's workers: Ctrl-C is the main process's to handle
    (it cancels the jobs and closes the cluster), not a traceback from every worker."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


_job_lock = threading.Lock()  # one job at a time per worker process: the caches of execute are not thread-safe
_prepared: set[WorkerSetup] = set()


def _setup_problem(setup: WorkerSetup) -> str | None:
    probe = Path(setup.run_dir) / PROBE_FILE
    try:
        seen = probe.read_text(encoding="ascii")
    except OSError:
        seen = None
    if seen != setup.token:
        return (f"cannot see the run folder {setup.run_dir} (put it on a filesystem shared with the workers, "
                f"at the same path)")
    if not os.access(setup.run_dir, os.W_OK):
        return f"cannot write to the run folder {setup.run_dir}"
    for folder in setup.plugin_folders:
        if not Path(folder).is_dir():
            return f"cannot see the plugin folder {folder} (put it on a filesystem shared with the workers)"
    return None


def _worker_threads() -> int:
    """The thread pools of a job get the worker's threads: its jobs run one at a time."""
    try:
        worker = distributed.get_worker()
    except ValueError:
        return 1
    state = getattr(worker, "state", worker)
    return max(1, int(getattr(state, "nthreads", 1) or 1))


def _prepare(setup: WorkerSetup) -> None:
    """Once per worker process and run: check the shared folders, load the plugins, pin threads."""
    if setup in _prepared:
        return
    problem = _setup_problem(setup)
    if problem:
        raise RuntimeError(f"this worker {problem}")
    for folder in setup.plugin_folders:
        registry.load_plugin_folder(folder)  # idempotent
    limit_threads(_worker_threads())
    _prepared.add(setup)


def probe_worker(setup: WorkerSetup, sample_files: list[str] | None = None) -> dict[str, Any]:
    """Run on each worker before the first job: what it sees and what it has registered."""
    with _job_lock:
        problem = _setup_problem(setup)
        missing = next((f for f in sample_files or () if not os.path.exists(f)), None)
        if problem is None and missing is not None:
            problem = (f"cannot see the sample file {missing} (samples, built-in ones included, must be at the "
                       f"same paths on the workers: a shared filesystem and the same Python environment path)")
        if problem is None:
            _prepare(setup)
        return {"problem": problem, "version": wmbench.__version__,
                "attacks": sorted(registry.attacks()) if problem is None else [],
                "methods": sorted(registry.methods()) if problem is None else []}


def run_job_on_worker(job: Job, ctx: RunContext, setup: WorkerSetup) -> list[Record]:
    with _job_lock:
        _prepare(setup)
        return run_job(job, ctx)
