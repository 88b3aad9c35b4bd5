"""The local executor: jobs in a pool of worker processes on this machine, or in-process for one worker."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from wmbench import registry
from wmbench.cells import Job
from wmbench.execute import failed_job, limit_threads, run_job
from wmbench.executors.base import Followers, JobDriver
from wmbench.store import Record


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


class LocalExecutor(JobDriver):
    """Drives jobs through a process pool (or in-process for one worker)."""

    def execute(self, first: list[Job], followers: Followers) -> None:
        if self.workers <= 1:
            limit_threads(threads_per_worker(1))
            self._run_serial(first, followers)
        else:
            self._run_pool(first, followers)

    def _run_serial(self, first: list[Job], followers: Followers) -> None:
        queue = list(first)
        while queue:
            job = queue.pop(0)
            queue[:0] = self.finish(job, run_job(job, self.ctx), followers)  # same sample next: decoded once

    def _run_pool(self, first: list[Job], followers: Followers) -> None:
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
                        ready.extend(self.finish(job, self._run_isolated(job), followers))
                    pool = self._new_pool(self.workers)
                    continue
                for future in finished:
                    job = in_flight.pop(future)
                    exc = future.exception()
                    records = future.result() if exc is None else failed_job(job, f"{type(exc).__name__}: {exc}")
                    ready.extend(self.finish(job, records, followers))
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
