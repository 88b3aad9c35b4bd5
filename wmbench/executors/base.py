"""The base of every executor: the order of work and the store (see ``wmbench.executors``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

from wmbench import registry
from wmbench.cells import Job
from wmbench.execute import RunContext, failed_job
from wmbench.store import Record, Store
from wmbench.suite import Suite


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


class Connection(Protocol):
    """Compute resources an executor reached or started for one run (e.g. a Dask client)."""

    def close(self) -> None: ...


Followers = dict[tuple, list[Job]]  # attack jobs waiting for an embed job, by its embed_id


class JobDriver:
    """The order of work and the store, shared by every executor.

    ``run`` queues the embed jobs first (costly methods first, so the slowest jobs do not
    end up alone on one core at the end) and each embed job's followers (its attack
    jobs) once its marked item is cached.

    A subclass implements ``execute(first, followers)``: it computes the jobs in
    ``first``, and those that ``finish`` releases, wherever it likes, and hands each
    job's records to ``finish`` as they come. Only ``finish``, called in the main
    process, writes the store: jobs never do, so a killed run loses only the jobs in
    flight and ``--resume`` skips every stored cell.

    Optional, for an executor whose jobs run elsewhere: ``connect`` reaches or starts
    the compute resources (called once per run, after every check of the suite; the run
    closes what it returns), and ``shared_paths`` asks for an absolute run folder.
    """

    shared_paths: ClassVar[bool] = False  # True: the run folder must mean the same on every worker

    def __init__(self, store: Store, ctx: RunContext, workers: int, suite: Suite, summary: RunSummary,
                 done: set[str], progress: Callable[[int, int], None] | None, *,
                 connection: Any = None, run_dir: Path | None = None) -> None:
        self.store, self.ctx, self.workers, self.suite = store, ctx, workers, suite
        self.summary, self.done, self.progress = summary, done, progress
        self.connection, self.run_dir = connection, run_dir
        self.finished = summary.skipped_cells

    @classmethod
    def connect(cls, scheduler: str | None, workers: int) -> Connection | None:
        """The compute resources for one run; None: nothing to reach or close."""
        return None

    def run(self, embed_jobs: list[Job], attack_jobs: list[Job]) -> None:
        if self.progress:
            self.progress(self.finished, self.summary.total_cells)
        cost = lambda j: -registry.get_method(j.method.name).relative_cost  # noqa: E731
        followers: Followers = {}
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
        self.execute(first, followers)

    def execute(self, first: list[Job], followers: Followers) -> None:
        """Compute ``first`` and every job ``finish`` releases; hand each job's records to ``finish``."""
        raise NotImplementedError

    def finish(self, job: Job, records: list[Record], followers: Followers) -> list[Job]:
        """Store a finished job's records; the attack jobs its embedding released, to queue next.

        If an embed job produced no marked item, its followers are stored as failed instead.
        """
        self._store(records)
        if job.attack is not None:
            return []
        nexts = followers.pop(job.embed_id, [])
        if nexts and not job.negatives_only and not Path(job.marked_cache).is_file():
            error = next((r.error for r in records if r.error), "embedding produced no item")
            for follower in nexts:
                self._store(failed_job(follower, error))
            return []
        return nexts

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
