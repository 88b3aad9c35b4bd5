"""Crash safety and --resume: kill -9 mid-run, resume, and compare with a clean run."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

from wmbench.store import Store
from testkit import cli_env, copy_photos, expected_cells, invoke, read_cells, run_cli, suite_text

Cli = Callable[..., tuple[int, str, str]]

RESUME_SAMPLES = ("astronaut.png", "chelsea.png", "coffee.png")
RESUME_METHODS = (("dwtDctSvd", "r1"), ("dwtDct", "r1"))
RESUME_ATTACKS = (
    ("jpeg", (90, 50, 30)),
    ("gaussian_noise", (2, 10)),
    ("median_filter", (3,)),
    ("rotate", (1, 2)),
)
STRENGTHS = {name: len(s) for name, s in RESUME_ATTACKS} | {"none": 1}
RESUME_TOTAL = expected_cells(len(RESUME_SAMPLES), len(RESUME_METHODS), [len(s) for _, s in RESUME_ATTACKS])


def stored_count(db_path: Path) -> int:
    """Cells committed so far, read the way any other process would (0 before the table exists)."""
    if not db_path.is_file():
        return 0
    db = sqlite3.connect(db_path, timeout=5)
    try:
        return int(db.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def start_run(base: Path, out: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "wmbench", "run", "suite.toml", "--out", out, "--workers", "1", "--no-progress"],
        cwd=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )


@pytest.mark.slow
def test_kill_9_then_resume_equals_a_clean_run(tmp_path: Path) -> None:
    """A real process is killed with SIGKILL once a third of the cells are stored, while the
    reference (uninterrupted) run of the same suite goes on in this process."""
    copy_photos(tmp_path / "imgs", RESUME_SAMPLES)
    suite = tmp_path / "suite.toml"
    suite.write_text(suite_text(methods=RESUME_METHODS, attacks=RESUME_ATTACKS, name="resume", seed=5),
                     encoding="utf-8")
    victim = start_run(tmp_path, "victim")
    problems: list[str] = []

    def kill_when_a_third_is_stored() -> None:
        deadline = time.monotonic() + 180
        while stored_count(tmp_path / "victim" / "results.sqlite") < RESUME_TOTAL // 3:
            if victim.poll() is not None:
                problems.append("the run ended before it could be killed")
                return
            if time.monotonic() > deadline:
                problems.append("no progress within 180 s")
                return
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_a_third_is_stored, daemon=True)
    killer.start()
    try:
        clean = invoke("run", suite, "--out", tmp_path / "clean", "--workers", "1", "--no-progress")
        killer.join(timeout=200)
        out, err = victim.communicate(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.communicate()
    assert not problems, (problems, out, err)
    assert victim.returncode == -signal.SIGKILL
    assert clean[0] == 0, clean[2]
    check_after_kill(tmp_path, suite)


def check_after_kill(base: Path, suite: Path) -> None:
    db_path = base / "victim" / "results.sqlite"
    # what the killed run left behind is consistent
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        meta = dict(db.execute("SELECT name, value FROM meta"))
    finally:
        db.close()
    assert "suite_text" in meta and "finished_at" not in meta
    before = read_cells(base / "victim")
    assert RESUME_TOTAL // 3 <= len(before) < RESUME_TOTAL
    for cell in before.values():
        assert cell["error"] is None and 0.0 <= cell["p_value"] <= 1.0 and cell["score"] is not None
    # one transaction per job: a job's cells are all stored or none are
    per_job = Counter((c["sample"], c["method"], c["attack"]) for c in before.values())
    for (_, _, attack), n in per_job.items():
        assert n == 2 * STRENGTHS[attack], (attack, n)

    code, out, err = invoke("run", suite, "--out", base / "victim", "--workers", "1", "--no-progress", "--resume")
    assert code == 0, err
    assert re.match(rf"{RESUME_TOTAL - len(before)} cells run, {len(before)} already done, 0 failed", out), out
    after = read_cells(base / "victim")  # read_cells also asserts the keys are unique
    assert len(after) == RESUME_TOTAL
    for key, cell in before.items():
        assert after[key] == cell  # untouched, down to its finished_at time stamp
    with Store(base / "victim") as store:
        assert "finished_at" in store.meta()

    reference = read_cells(base / "clean")
    assert set(reference) == set(after)
    for key, cell in reference.items():
        assert after[key]["p_value"] == cell["p_value"], key
        assert after[key]["bits_matched"] == cell["bits_matched"], key
        assert after[key]["psnr"] == cell["psnr"], key


# --- refusing to mix runs, resuming finished and cache-less runs (in-process, small) ---------------


@pytest.fixture
def finished(cli: Cli, write_suite: Callable[..., Path], photos: Path, tmp_path: Path) -> tuple[Path, Path]:
    suite = write_suite(attacks=[("jpeg", (50,))])
    code, out, err = cli("run", suite, "--out", tmp_path / "run", "--workers", "1", "--no-progress")
    assert code == 0, err
    assert out.startswith("4 cells run, 0 already done, 0 failed")
    return suite, tmp_path / "run"


def test_finished_folder_without_resume_is_refused(cli: Cli, finished: tuple[Path, Path]) -> None:
    suite, run_dir = finished
    before = read_cells(run_dir)
    code, out, err = cli("run", suite, "--out", run_dir, "--workers", "1", "--no-progress")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "already holds results" in err and "--resume" in err
    assert read_cells(run_dir) == before


def test_resume_with_a_different_suite_is_refused(cli: Cli, finished: tuple[Path, Path],
                                                  write_suite: Callable[..., Path]) -> None:
    _, run_dir = finished
    before = read_cells(run_dir)
    other = write_suite("other.toml", attacks=[("jpeg", (30,))])
    code, out, err = cli("run", other, "--out", run_dir, "--workers", "1", "--no-progress", "--resume")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "different suite" in err
    assert read_cells(run_dir) == before


def test_resume_of_a_finished_run_does_nothing(cli: Cli, finished: tuple[Path, Path]) -> None:
    suite, run_dir = finished
    before = read_cells(run_dir)
    code, out, err = cli("run", suite, "--out", run_dir, "--workers", "1", "--no-progress", "--resume")
    assert code == 0, err
    assert out.startswith("0 cells run, 4 already done, 0 failed")
    assert read_cells(run_dir) == before


def test_resume_recomputes_lost_cells_even_without_the_embed_cache(cli: Cli, finished: tuple[Path, Path]) -> None:
    """A results file copied without its cache/ folder, minus some cells: resume re-embeds."""
    suite, run_dir = finished
    before = read_cells(run_dir)
    db = sqlite3.connect(run_dir / "results.sqlite")
    with db:
        db.execute("DELETE FROM cells WHERE attack = 'jpeg'")
    db.close()
    for png in (run_dir / "cache").rglob("*.png"):
        png.unlink()
    code, out, err = cli("run", suite, "--out", run_dir, "--workers", "1", "--no-progress", "--resume")
    assert code == 0, err
    assert out.startswith("2 cells run, 2 already done, 0 failed"), out
    after = read_cells(run_dir)
    assert set(after) == set(before)
    for key, cell in before.items():
        assert after[key]["p_value"] == cell["p_value"] and after[key]["error"] is None
        if cell["attack"] == "none":
            assert after[key] == cell  # not recomputed


def test_resume_accumulates_run_seconds(cli: Cli, finished: tuple[Path, Path]) -> None:
    suite, run_dir = finished
    with Store(run_dir) as store:
        first = store.meta()["seconds"]
    if not first > 0.1:  # an embed and eight detections
        pytest.fail(f"implausible run time {first}")
    code, _, err = cli("run", suite, "--out", run_dir, "--workers", "1", "--no-progress", "--resume")
    if code != 0:
        pytest.fail(err)
    with Store(run_dir) as store:
        assert store.meta()["seconds"] >= first


# --- worker processes dying, and Ctrl-C, with --workers 2 --------------------------------------

PLUGIN = '''
import os
import signal
import time

from wmbench.api import attack


@attack("suicide", modality="image", strengths=[1])
def suicide(image, strength, rng):
    """Kill the worker process, as the kernel's OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)


@attack("nap", modality="image", strengths=[1, 2, 3])
def nap(image, strength, rng):
    """Sleep a second, then change nothing: slow work that costs no CPU."""
    time.sleep(1.0)
    return image.copy()
'''


def plugin_suite(base: Path, attacks: list[tuple[str, tuple[Any, ...]]], samples: tuple[str, ...]) -> Path:
    copy_photos(base / "imgs", samples)
    (base / "plugins").mkdir()
    (base / "plugins" / "test_plugin.py").write_text(PLUGIN, encoding="utf-8")
    path = base / "suite.toml"
    path.write_text('plugins = ["plugins"]\n' + suite_text(attacks=attacks), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_dying_worker_fails_only_its_own_job(tmp_path: Path) -> None:
    plugin_suite(tmp_path, [("jpeg", (90, 50)), ("suicide", (1,)), ("flip", ("horizontal",))],
                 ("astronaut.png", "chelsea.png"))
    proc = run_cli(["run", "suite.toml", "--out", "run", "--workers", "2", "--no-progress"], cwd=tmp_path)
    # preconditions fail with pytest.fail, not AssertionError, so they cannot pass for the expected failure
    if proc.returncode != 0:
        pytest.fail(f"run failed: {proc.stderr}")
    cells = read_cells(tmp_path / "run")
    suicide = [c for c in cells.values() if c["attack"] == "suicide"]
    if len(cells) != expected_cells(2, 1, [2, 1, 1]) or not suicide:
        pytest.fail(f"unexpected cells: {len(cells)}")
    if not all("worker process died" in c["error"] for c in suicide):
        pytest.fail("the killed job's cells do not say 'worker process died'")
    innocent = [c for c in cells.values() if c["attack"] != "suicide"]
    assert [c for c in innocent if c["error"]] == []


@pytest.mark.slow
def test_ctrl_c_with_workers_stops_promptly(tmp_path: Path) -> None:
    plugin_suite(tmp_path, [("nap", (1, 2, 3))], ("astronaut.png",))
    for i in range(2, 4):  # three samples: three 6-second nap jobs, two running, one queued
        shutil.copyfile(tmp_path / "imgs" / "astronaut.png", tmp_path / "imgs" / f"astronaut{i}.png")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wmbench", "run", "suite.toml", "--out", "run", "--workers", "2", "--no-progress"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 120
        while stored_count(tmp_path / "run" / "results.sqlite") < 6:  # all three embeds done
            if proc.poll() is not None:
                pytest.fail(f"the run ended before Ctrl-C: {proc.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("no embed finished within 120 s")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        try:
            out, err = proc.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            out, err = "", ""
        stopped = proc.poll() is not None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert stopped, "still running 3 s after Ctrl-C"
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
