"""Scale-out on Dask: ``wmbench run --executor dask [--scheduler ADDRESS]``.

A real ``distributed.LocalCluster`` (two worker processes, one thread each) runs a small
suite with an image mark, a text mark and a loose plugin folder named by the suite; the
results must equal, cell for cell, those of the local executor. Resume, a folder the
workers cannot see, a dying worker and bad scheduler addresses are checked too.
"""

from __future__ import annotations

import math
import shutil
import socket
import sqlite3
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import assert_one_line_error, copy_photos, invoke, read_cells, run_cli, suite_text

try:
    import distributed
except ImportError:  # the optional extra: pip install "wmbench[dask]"
    distributed = None

needs_dask = pytest.mark.skipif(distributed is None, reason='dask[distributed] is not installed '
                                                           '(pip install "wmbench[dask]")')

PLUGINS = {
    "dask_noise_test.py": '''
        import numpy as np
        from wmbench.api import attack, as_rgb_uint8

        @attack("dask_noise_test", modality="image", strengths=[4, 16])
        def dask_noise_test(image, strength, rng):
            """Add uniform integer noise of this amplitude (drawn from rng)."""
            noise = rng.integers(-16, 17, size=image.shape) * (strength / 16)
            return as_rgb_uint8(image.astype(np.float64) + noise)
    ''',
    "dask_shout_test.py": '''
        import re
        from wmbench.api import attack

        @attack("dask_shout_test", modality="text", strengths=[0.2, 0.6])
        def dask_shout_test(text, strength, rng):
            """Upper-case this fraction of the words (one rng draw per word)."""
            words = re.findall(r"\\w+", text)
            draws = iter(rng.random(len(words)))
            return re.sub(r"\\w+", lambda m: m[0].upper() if next(draws) < strength else m[0], text)
    ''',
}

DIE_PLUGIN = '''
    import os
    from wmbench.api import attack

    @attack("dask_die_test", modality="image", strengths=[1])
    def dask_die_test(image, strength, rng):
        """Kill the worker process (a crash in native code, or the OOM killer)."""
        os._exit(1)
'''

SUITE = '''
plugins = ["plugins"]

[suite]
name = "dask"
seed = 5
alpha = 0.01

[samples]
images = ["imgs"]
texts = ["builtin:texts"]

[[methods]]
name = "dwtDctSvd"
key = "d1"

[[methods]]
name = "lexical"
key = "d1"
max_samples = 2

[[attacks]]
name = "jpeg"
strengths = [90, 50]

[[attacks]]
name = "gaussian_noise"
strengths = [5, 10]

[[attacks]]
name = "dask_noise_test"

[[attacks]]
name = "word_delete"
strengths = [0.1, 0.3]

[[attacks]]
name = "dask_shout_test"
'''
PHOTOS = ("astronaut.png", "chelsea.png")
# images: 2 photos x (1 clean + 2 + 2 + 2) x 2; text: 2 texts x (1 clean + 2 + 2) x 2
TOTAL = 2 * 7 * 2 + 2 * 5 * 2
EXACT = ("sample", "modality", "method", "wm_key", "attack", "strength", "strength_index", "marked", "score",
         "p_value", "detected", "bits_matched", "bits_total", "tokens", "error", "skipped")
# float tolerance: similarity comes from a float32 model whose sums depend on its thread count
APPROX = {"psnr": 1e-9, "ssim": 1e-9, "perplexity": 1e-9, "similarity": 1e-5}


def write_project(base: Path) -> Path:
    """The suite with its photos and plugin folder. Written once per session: a plugin
    name registered from two folders would be an error in this (main) process."""
    copy_photos(base / "imgs", PHOTOS)
    (base / "plugins").mkdir(parents=True, exist_ok=True)
    for name, text in PLUGINS.items():
        (base / "plugins" / name).write_text(textwrap.dedent(text), encoding="utf-8")
    path = base / "suite.toml"
    path.write_text(SUITE, encoding="utf-8")
    return path


def plain_suite(base: Path) -> Path:
    """A suite without plugins, for the user errors."""
    copy_photos(base / "imgs", PHOTOS[:1])
    path = base / "suite.toml"
    path.write_text(suite_text(attacks=[("jpeg", (50,))]), encoding="utf-8")
    return path


def assert_same_cells(got: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]], what: str) -> None:
    assert sorted(got) == sorted(expected), f"{what}: different cell keys"
    for key, cell in expected.items():
        other = got[key]
        for column in EXACT:
            assert other[column] == cell[column], (what, key, column, other[column], cell[column])
        for column, rel in APPROX.items():
            a, b = other[column], cell[column]
            assert (a is None) == (b is None), (what, key, column, a, b)
            if a is not None and not (math.isinf(a) and a == b):
                assert a == pytest.approx(b, rel=rel, abs=1e-12), (what, key, column, a, b)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("dask-project"))


@pytest.fixture(scope="module")
def local_run(project: Path) -> Path:
    """The reference: the same suite with the local executor, one worker."""
    out = project.parent / "local"
    code, stdout, err = invoke("run", project, "--out", out, "--workers", "1", "--no-progress")
    assert code == 0, err
    assert stdout.startswith(f"{TOTAL} cells run, 0 already done, 0 failed"), stdout
    return out


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A LocalCluster of two worker processes with one thread each; yields its address."""
    if distributed is None:
        pytest.skip('dask[distributed] is not installed (pip install "wmbench[dask]")')
    import dask

    # Dask gives up on a task after it was on this many dying workers (default 3): 1 keeps
    # the dying-worker test short; what wmbench does with a KilledWorker is the same.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=":0")
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def workers_registry(address: str) -> dict[str, list[str]]:
    """The attacks registered in each worker process of the cluster at ``address``."""
    def registered() -> list[str]:
        from wmbench import registry

        return sorted(registry._attacks)

    with distributed.Client(address, set_as_default=False) as client:
        return client.run(registered)


# -- the equivalence with the local executor ----------------------------------------------------


@needs_dask
@pytest.mark.slow
def test_dask_run_equals_the_local_run_cell_for_cell(project: Path, local_run: Path, scheduler: str) -> None:
    out = project.parent / "dask"
    code, stdout, err = invoke("run", project, "--out", out, "--executor", "dask", "--scheduler", scheduler,
                               "--no-progress")
    assert code == 0, err
    assert stdout.startswith(f"{TOTAL} cells run, 0 already done, 0 failed, in "), stdout
    assert f"with 2 Dask worker(s) (2 thread(s)) at {scheduler}" in stdout.splitlines()[0], stdout
    assert_same_cells(read_cells(out), read_cells(local_run), "dask vs local")
    assert not (out / ".wmbench-dask-probe").exists()
    # the workers, not this process, ran the jobs: each imported the suite's loose plugin folder
    for worker, attacks in workers_registry(scheduler).items():
        assert {"dask_noise_test", "dask_shout_test"} <= set(attacks), (worker, attacks)


@needs_dask
@pytest.mark.slow
def test_dask_resume_runs_only_the_missing_cells(project: Path, local_run: Path, scheduler: str) -> None:
    """A run folder missing some cells (and one embedding's cache) is completed on the cluster."""
    out = project.parent / "resume"
    shutil.copytree(local_run, out)
    db = sqlite3.connect(out / "results.sqlite")
    with db:
        db.execute("DELETE FROM cells WHERE attack IN ('jpeg', 'dask_shout_test') "
                   "OR (sample = 'chelsea' AND attack = 'none')")
    db.close()
    before = read_cells(out)
    missing = TOTAL - len(before)
    assert 0 < missing < TOTAL
    for cached in (out / "cache" / "marked").iterdir():  # resume must embed again where it needs to
        cached.unlink()
    code, stdout, err = invoke("run", project, "--out", out, "--executor", "dask", "--scheduler", scheduler,
                               "--resume", "--no-progress")
    assert code == 0, err
    assert stdout.startswith(f"{missing} cells run, {len(before)} already done, 0 failed"), stdout
    after = read_cells(out)
    for key, cell in before.items():
        assert after[key] == cell  # untouched, down to its finished_at time stamp
    assert_same_cells(after, read_cells(local_run), "dask resume vs local")

    code, stdout, err = invoke("run", project, "--out", out, "--executor", "dask", "--scheduler", scheduler,
                               "--resume", "--no-progress")
    assert code == 0, err
    assert stdout.startswith(f"0 cells run, {TOTAL} already done, 0 failed"), stdout


@needs_dask
@pytest.mark.slow
def test_a_relative_out_folder_means_the_same_on_workers_started_elsewhere(project: Path, local_run: Path,
                                                                           scheduler: str) -> None:
    """The command runs in the project folder; the cluster's workers run in this process's
    working directory. The jobs must carry absolute cache paths."""
    assert Path.cwd().resolve() != project.parent.resolve()
    proc = run_cli(["run", "suite.toml", "--out", "relative", "--executor", "dask", "--scheduler", scheduler,
                    "--no-progress"], cwd=project.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{TOTAL} cells run, 0 already done, 0 failed"), proc.stdout
    assert_same_cells(read_cells(project.parent / "relative"), read_cells(local_run), "relative --out vs local")
    assert not (Path.cwd() / "relative").exists()


@needs_dask
@pytest.mark.slow
def test_dask_without_a_scheduler_starts_a_local_cluster(project: Path, local_run: Path) -> None:
    out = project.parent / "own-cluster"
    code, stdout, err = invoke("run", project, "--out", out, "--executor", "dask", "--workers", "2",
                               "--no-progress")
    assert code == 0, err
    assert "with 2 Dask worker(s) (2 thread(s)) in a LocalCluster" in stdout.splitlines()[0], stdout
    assert_same_cells(read_cells(out), read_cells(local_run), "own LocalCluster vs local")


# -- what the workers must share, and workers dying ---------------------------------------------


@needs_dask
@pytest.mark.slow
def test_a_worker_that_cannot_see_the_run_folder_is_one_line(project: Path, scheduler: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The main process leaves its token where the workers do not look: as a worker on
    another machine with a local folder of the same name would see it."""
    from wmbench.executors import dask as dask_cluster

    monkeypatch.setattr(dask_cluster, "PROBE_FILE", ".elsewhere")
    out = project.parent / "unseen"
    code, stdout, err = invoke("run", project, "--out", out, "--executor", "dask", "--scheduler", scheduler,
                               "--no-progress")
    assert_one_line_error(code, err, "dask worker", "cannot see the run folder", str(out.resolve()),
                          "shared with the workers")
    assert stdout == ""
    assert read_cells(out) == {}


@needs_dask
@pytest.mark.slow
def test_a_worker_that_cannot_see_a_sample_file_is_one_line(project: Path, scheduler: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """As a worker whose Python environment (the built-in samples' home) is elsewhere."""
    from wmbench.executors import dask as dask_cluster

    monkeypatch.setattr(dask_cluster, "source_file", lambda source: source + ".not-on-the-workers")
    out = project.parent / "no-samples"
    code, _, err = invoke("run", project, "--out", out, "--executor", "dask", "--scheduler", scheduler,
                          "--no-progress")
    assert_one_line_error(code, err, "dask worker", "cannot see the sample file", ".not-on-the-workers")
    assert read_cells(out) == {}


@needs_dask
@pytest.mark.slow
def test_a_dying_worker_fails_only_its_own_job(tmp_path: Path, project: Path, scheduler: str) -> None:
    """The job whose attack kills its worker process fails with the reason once Dask has
    given up on it; the other jobs, some lost with the dead workers, complete."""
    (tmp_path / "die").mkdir()
    (tmp_path / "die" / "dask_die_test.py").write_text(textwrap.dedent(DIE_PLUGIN), encoding="utf-8")
    base = project.parent
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.replace('name = "dask_noise_test"', 'name = "dask_die_test"')
                     .replace('plugins = ["plugins"]', f'plugins = ["{base / "plugins"}", "die"]')
                     .replace('images = ["imgs"]', f'images = ["{base / "imgs"}"]'), encoding="utf-8")
    code, stdout, err = invoke("run", suite, "--out", tmp_path / "run", "--executor", "dask",
                               "--scheduler", scheduler, "--no-progress")
    assert code == 0, err
    cells = read_cells(tmp_path / "run")
    assert len(cells) == TOTAL - 2 * 2 * 2 + 2 * 2  # the die attack has one strength
    dead = [c for c in cells.values() if c["attack"] == "dask_die_test"]
    assert len(dead) == 4 and all("worker process died" in c["error"] for c in dead)
    innocent = [c for c in cells.values() if c["attack"] != "dask_die_test"]
    assert [(c["sample"], c["attack"], c["error"]) for c in innocent if c["error"]] == []
    assert stdout.startswith(f"{len(cells)} cells run, 0 already done, 4 failed"), stdout


# -- user errors: one line, exit 2 --------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@needs_dask
@pytest.mark.parametrize("address,needle", [
    ("tcp://127.0.0.1:{port}", "cannot reach the Dask scheduler"),
    ("no-port-here", "not a Dask scheduler address"),
])
def test_a_bad_scheduler_address_is_one_line(tmp_path: Path, address: str, needle: str) -> None:
    suite = plain_suite(tmp_path)
    address = address.format(port=closed_port())
    started = time.monotonic()
    proc = run_cli(["run", suite, "--out", "run", "--executor", "dask", "--scheduler", address, "--no-progress"],
                   cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, f"--scheduler {address}", needle)
    assert proc.stdout == ""
    assert time.monotonic() - started < 60


@needs_dask
@pytest.mark.slow
def test_a_peer_that_is_no_dask_scheduler_is_one_line_after_the_timeout(tmp_path: Path) -> None:
    """Something listens there, accepts, and says nothing (e.g. a wrong port)."""
    from wmbench.executors.dask import CONNECT_TIMEOUT

    suite = plain_suite(tmp_path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    try:
        started = time.monotonic()
        proc = run_cli(["run", suite, "--out", "run", "--executor", "dask", "--scheduler", address,
                        "--no-progress"], cwd=tmp_path, timeout=CONNECT_TIMEOUT + 60)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for sock in accepted:
            sock.close()
        listener.close()
    assert_one_line_error(proc.returncode, proc.stderr, f"--scheduler {address}", "no Dask scheduler answered")
    assert elapsed < CONNECT_TIMEOUT + 30


def test_scheduler_without_executor_dask_is_one_line(tmp_path: Path) -> None:
    suite = plain_suite(tmp_path)
    code, _, err = invoke("run", suite, "--out", tmp_path / "run", "--scheduler", "tcp://127.0.0.1:8786")
    assert_one_line_error(code, err, "--scheduler", "--executor dask")
    assert not (tmp_path / "run").exists()


def test_without_dask_installed_the_executor_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs whether or not dask is installed: the import is made to fail."""
    suite = plain_suite(tmp_path)
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    monkeypatch.delitem(sys.modules, "wmbench.executors.dask", raising=False)
    code, stdout, err = invoke("run", suite, "--out", tmp_path / "run", "--executor", "dask", "--no-progress")
    assert_one_line_error(code, err, "--executor dask", 'pip install "wmbench[dask]"')
    assert stdout == ""
