"""Executors: where a run's jobs are computed. ``wmbench run --executor NAME``.

Every executor is a ``JobDriver`` subclass. The driver holds the order of work (embed
jobs first; each embed job's attack jobs once its marked item is cached) and the store;
the subclass only computes jobs, in its ``execute(first, followers)`` hook, and hands
each job's records back to ``finish``. Only the main process writes the store, whatever
the executor, so resuming and crash safety are the same everywhere.

``EXECUTORS`` maps each ``--executor`` name to its class, imported only when asked for
(``executor_class``), so an optional executor's packages (Dask) are needed only by the
runs that use it.
"""

from __future__ import annotations

import importlib

from wmbench.errors import SuiteError
from wmbench.executors.base import Connection, Followers, JobDriver, RunSummary

__all__ = ["EXECUTORS", "Connection", "Followers", "JobDriver", "RunSummary", "executor_class"]

EXECUTORS: dict[str, str] = {  # --executor name -> "module:class"
    "local": "wmbench.executors.local:LocalExecutor",  # a process pool on this machine
    "dask": "wmbench.executors.dask:DaskExecutor",  # a Dask cluster; needs pip install "wmbench[dask]"
}


def executor_class(name: str) -> type[JobDriver]:
    """The executor called ``name``, its module imported now.

    Call it before any other work of a run: an unknown name, or an executor whose
    packages are not installed, is one clear line (a ``WmbenchError``).
    """
    if name not in EXECUTORS:
        raise SuiteError(f"--executor: must be {' or '.join(EXECUTORS)}, got {name!r}")
    module, _, cls = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
