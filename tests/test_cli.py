"""The command line, end to end: list, embed/detect, user errors, run + export, determinism."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from wmbench.errors import SuiteError
from testkit import (
    EXPORT_COLUMNS,
    assert_one_line_error,
    cli_env,
    copy_photos,
    expected_cells,
    invoke,
    read_cells,
    run_cli,
    suite_text,
)

Cli = Callable[..., tuple[int, str, str]]

# --- list --------------------------------------------------------------------------


def test_list_methods(cli: Cli) -> None:
    code, out, err = cli("list", "methods")
    assert code == 0, err
    names = [line.split()[0] for line in out.splitlines()]
    assert {"dwtDct", "dwtDctSvd", "rivaGan"} <= set(names)
    assert all(" image " in line for line in out.splitlines() if line.split()[0] in {"dwtDct", "rivaGan"})


def test_list_attacks(cli: Cli) -> None:
    code, out, err = cli("list", "attacks")
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.splitlines()}
    for name in ("jpeg", "webp", "rotate", "gaussian_blur", "crop_center_resize", "flip"):
        assert name in lines
    assert "[90, 70, 50, 30] JPEG quality" in lines["jpeg"]  # strengths are shown, weak -> strong, with their unit


def test_list_modalities(cli: Cli) -> None:
    code, out, err = cli("list", "modalities")
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert {"image", "text"} <= set(lines)
    assert "samples: images; metrics: psnr, ssim" in lines["image"]
    assert "samples: texts, prompts; metrics: perplexity, similarity" in lines["text"]


def test_list_samples(cli: Cli) -> None:
    from wmbench.samples import parse_source

    code, out, err = cli("list", "samples")
    assert code == 0, err
    assert "astronaut" in out and "camera" in out
    by_kind: dict[str, list[str]] = {}
    for line in out.splitlines():
        by_kind.setdefault(line.split()[0], []).append(line.split()[-1])
    # the built-ins of every modality: photos, human texts, prompts
    assert set(by_kind) == {"builtin:images", "builtin:texts", "builtin:prompts"}
    assert len(by_kind["builtin:images"]) >= 8
    for source in (s for sources in by_kind.values() for s in sources):
        path, line = parse_source(source)  # a prompt is one line of a file: "prompts.txt#L3"
        assert Path(path).is_file(), source
        if line is not None:
            assert 1 <= line <= len(Path(path).read_text(encoding="utf-8").splitlines()), source
    assert all(parse_source(s)[1] is not None for s in by_kind["builtin:prompts"])


# --- embed / detect ----------------------------------------------------------------------


def test_embed_then_detect(cli: Cli, tmp_path: Path, astronaut_path: Path) -> None:
    marked = tmp_path / "marked.png"
    code, out, err = cli("embed", "--method", "dwtDctSvd", "--key", "alice", astronaut_path, marked)
    assert code == 0, err
    info = json.loads(out)
    assert info["output"] == str(marked) and info["method"] == "dwtDctSvd" and info["psnr"] > 30
    assert 0.9 < info["ssim"] <= 1  # every metric that judges an image's damage
    assert marked.is_file()

    def detect(path: Path, key: str, *extra: str) -> dict[str, Any]:
        code, out, err = cli("detect", "--method", "dwtDctSvd", "--key", key, *extra, path)
        assert code == 0, err
        result = json.loads(out)
        assert {"p_value", "detected", "score", "bits_matched", "bits_total", "alpha"} <= set(result)
        assert 0.0 <= result["p_value"] <= 1.0
        return result

    right = detect(marked, "alice")
    assert right["detected"] is True and right["p_value"] < 1e-6 and right["score"] >= 30
    assert right["alpha"] == 0.01
    wrong = detect(marked, "bob")
    assert wrong["detected"] is False and wrong["p_value"] > 0.01
    clean = detect(astronaut_path, "alice")
    assert clean["detected"] is False
    strict = detect(marked, "alice", "--alpha", "1e-12")  # p = 2^-32 at best
    assert strict["detected"] is (right["p_value"] < 1e-12)


def test_embed_too_small_image_is_a_user_error(cli: Cli, tmp_path: Path) -> None:
    from PIL import Image

    small = tmp_path / "small.png"
    Image.new("RGB", (200, 120), "gray").save(small)
    code, _, err = cli("embed", "--method", "dwtDct", "--key", "k", small, tmp_path / "o.png")
    assert_one_line_error(code, err, "small.png", "200x120", "256x256")


# --- user errors: exit 2, one line, no traceback ----------------------------------------


def test_unknown_method(cli: Cli, tmp_path: Path, astronaut_path: Path) -> None:
    code, out, err = cli("embed", "--method", "dwtdct", "--key", "k", astronaut_path, tmp_path / "o.png")
    assert_one_line_error(code, err, "--method", "'dwtdct'", "dwtDct, dwtDctSvd, ", "rivaGan")
    assert out == "" and not (tmp_path / "o.png").exists()


def test_missing_input_file(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("detect", "--method", "dwtDctSvd", "--key", "k", tmp_path / "nope.png")
    assert_one_line_error(code, err, "nope.png", "not found")


def test_unreadable_input_file(cli: Cli, tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    code, _, err = cli("detect", "--method", "dwtDctSvd", "--key", "k", fake)
    assert_one_line_error(code, err, "fake.png", "not a readable image")


def test_bad_suite_path(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("run", tmp_path / "nosuch.toml", "--out", tmp_path / "out", "--no-progress")
    assert_one_line_error(code, err, "nosuch.toml", "not found")
    assert not (tmp_path / "out").exists()  # nothing ran


def test_malformed_suite(cli: Cli, write_suite: Callable[..., Path], tmp_path: Path) -> None:
    path = write_suite("broken.toml", text="[suite\nname = 1\n")
    code, _, err = cli("run", path, "--out", tmp_path / "out", "--no-progress")
    assert_one_line_error(code, err, "broken.toml", "malformed TOML")


def test_invalid_suite_field(cli: Cli, write_suite: Callable[..., Path], photos: Path, tmp_path: Path) -> None:
    path = write_suite(attacks=[("jpeg", (90,)), ("jpg", (50,))])
    code, _, err = cli("run", path, "--out", tmp_path / "out", "--no-progress")
    assert_one_line_error(code, err, "suite.toml", "attacks[1].name", "unknown attack 'jpg'")


def test_workers_must_be_positive(cli: Cli, write_suite: Callable[..., Path], photos: Path, tmp_path: Path) -> None:
    code, _, err = cli("run", write_suite(), "--out", tmp_path / "out", "--workers", "0", "--no-progress")
    assert_one_line_error(code, err, "--workers")


def test_export_of_a_folder_that_is_not_a_run(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("export", tmp_path)
    assert_one_line_error(code, err, str(tmp_path), "results.sqlite")


def test_debug_raises_instead(cli: Cli, tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="suite file not found"):
        cli("--debug", "run", tmp_path / "nosuch.toml", "--no-progress")


def test_real_process_user_errors(tmp_path: Path, astronaut_path: Path) -> None:
    """The installed entry point: stderr is exactly one line, and --debug shows the traceback."""
    (tmp_path / "broken.toml").write_text("[suite\n", encoding="utf-8")
    plain = run_cli(["run", "broken.toml", "--out", "out", "--no-progress"], cwd=tmp_path)
    assert_one_line_error(plain.returncode, plain.stderr, "broken.toml", "malformed TOML")
    assert plain.stdout == ""
    debug = run_cli(["--debug", "run", "broken.toml", "--out", "out", "--no-progress"], cwd=tmp_path)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr and "SuiteError" in debug.stderr
    unknown = run_cli(["detect", "--method", "nope", "--key", "k", str(astronaut_path)], cwd=tmp_path)
    assert_one_line_error(unknown.returncode, unknown.stderr, "unknown method 'nope'")


def test_export_into_missing_folder_is_a_user_error(cli: Cli, tmp_path: Path) -> None:
    from wmbench.store import Store

    Store(tmp_path / "run").close()  # an (empty) run folder
    assert cli("export", tmp_path / "run")[0] == 0
    code, _, err = cli("export", tmp_path / "run", "-o", tmp_path / "no" / "such" / "dir" / "x.csv")
    assert_one_line_error(code, err, "x.csv")


def test_out_pointing_at_a_file_is_a_user_error(cli: Cli, write_suite: Callable[..., Path], photos: Path,
                                                tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("I am a file")
    code, _, err = cli("run", write_suite(), "--out", target, "--no-progress")
    assert_one_line_error(code, err, "taken")


def test_corrupt_results_file_is_a_user_error(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "results.sqlite").write_bytes(b"this is not a database" * 100)
    code, _, err = cli("export", tmp_path)
    assert_one_line_error(code, err, "results.sqlite")


def test_detect_alpha_out_of_range_is_a_user_error(cli: Cli, astronaut_path: Path) -> None:
    code, _, err = cli("detect", "--method", "dwtDctSvd", "--key", "k", "--alpha", "1.5", astronaut_path)
    assert_one_line_error(code, err, "--alpha")


# --- run + export, end to end ---------------------------------------------------------------

E2E_SAMPLES = ("astronaut.png", "chelsea.png")
E2E_METHODS = (("dwtDctSvd", "k1"), ("dwtDct", "k1"))
E2E_ATTACKS = (("jpeg", (90, 50)), ("flip", ("horizontal",)))
E2E_ROWS = expected_cells(len(E2E_SAMPLES), len(E2E_METHODS), [len(s) for _, s in E2E_ATTACKS])


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny suite run twice at once: ``--workers 2`` as a real process (with its progress
    lines), ``--workers 1`` in-process (same code path, no second interpreter start-up)."""
    base = tmp_path_factory.mktemp("e2e")
    copy_photos(base / "imgs", E2E_SAMPLES)
    (base / "tiny.toml").write_text(suite_text(methods=E2E_METHODS, attacks=E2E_ATTACKS), encoding="utf-8")
    w2 = subprocess.Popen([sys.executable, "-m", "wmbench", "run", "tiny.toml", "--out", "w2", "--workers", "2"],
                          cwd=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        w1 = invoke("run", base / "tiny.toml", "--out", base / "w1", "--workers", "1", "--no-progress")
        out, err = w2.communicate(timeout=180)
    finally:
        if w2.poll() is None:
            w2.kill()
            w2.communicate()
    return {"base": base, "w1": base / "w1", "w1_proc": w1, "w2": base / "w2", "w2_proc": (w2.returncode, out, err)}


@pytest.mark.slow
def test_run_succeeds_and_summarises(finished_runs: dict[str, Any]) -> None:
    for name in ("w1", "w2"):
        code, out, err = finished_runs[f"{name}_proc"]
        assert code == 0, err
        assert re.match(rf"{E2E_ROWS} cells run, 0 already done, 0 failed, in \d+ s with {name[1]} worker\(s\)", out), out
        assert (finished_runs[name] / "results.sqlite").is_file()
        assert (finished_runs[name] / "report.html").is_file()
        assert "Traceback" not in err
    assert finished_runs["w1_proc"][2] == ""  # --no-progress: nothing on stderr
    progress = finished_runs["w2_proc"][2]  # not a terminal: plain progress lines
    assert f"wmbench: {E2E_ROWS}/{E2E_ROWS} cells (100 %)" in progress


def export(cli: Cli, run_dir: Path, fmt: str) -> str:
    code, out, err = cli("export", run_dir, "--format", fmt)
    assert code == 0, err
    return out


@pytest.mark.slow
def test_export_csv(finished_runs: dict[str, Any]) -> None:
    proc = run_cli(["export", finished_runs["w1"], "--format", "csv"], cwd=finished_runs["base"])  # a real process
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == E2E_ROWS
    assert set(EXPORT_COLUMNS) <= set(rows[0])
    assert {r["sample"] for r in rows} == set(E2E_SAMPLES)
    assert {r["method"] for r in rows} == {m for m, _ in E2E_METHODS}
    assert {(r["attack"], r["strength"]) for r in rows} == {("none", ""), ("jpeg", "90"), ("jpeg", "50"),
                                                            ("flip", "horizontal")}
    assert {r["marked"] for r in rows} == {"true", "false"}
    assert all(r["error"] == "" and r["modality"] == "image" for r in rows)
    for r in rows:
        assert 0.0 <= float(r["p_value"]) <= 1.0
        assert r["detected"] == ("true" if float(r["p_value"]) < 0.01 else "false")
        assert float(r["seconds"]) >= 0
    clean_marked = [r for r in rows if r["attack"] == "none" and r["marked"] == "true"]
    assert len(clean_marked) == 4 and all(r["detected"] == "true" for r in clean_marked)
    assert all(float(r["psnr"]) > 30 and 0.9 < float(r["ssim"]) < 1 for r in clean_marked)
    clean_unmarked = [r for r in rows if r["attack"] == "none" and r["marked"] == "false"]
    assert all(r["psnr"] == "inf" and float(r["ssim"]) == 1.0 for r in clean_unmarked)
    svd_unmarked = [r for r in rows if r["method"] == "dwtDctSvd" and r["marked"] == "false"]
    assert all(r["detected"] == "false" for r in svd_unmarked)
    svd_jpeg90 = [r for r in rows if (r["method"], r["attack"], r["strength"], r["marked"])
                  == ("dwtDctSvd", "jpeg", "90", "true")]
    assert len(svd_jpeg90) == 2 and all(r["detected"] == "true" for r in svd_jpeg90)


@pytest.mark.slow
def test_export_jsonl_matches_csv(cli: Cli, finished_runs: dict[str, Any], tmp_path: Path) -> None:
    out_file = tmp_path / "cells.jsonl"
    code, out, err = cli("export", finished_runs["w1"], "--format", "jsonl", "-o", out_file)
    assert code == 0 and out == ""
    assert f"{E2E_ROWS} rows written to {out_file}" in err
    lines = out_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == E2E_ROWS
    rows = [json.loads(line) for line in lines]
    assert set(EXPORT_COLUMNS) <= set(rows[0])
    for r in rows:
        assert isinstance(r["marked"], bool) and isinstance(r["detected"], bool)
        assert isinstance(r["p_value"], float) and 0.0 <= r["p_value"] <= 1.0
        assert r["error"] is None
        assert (r["strength"] is None) == (r["attack"] == "none")
        if r["attack"] == "jpeg":
            assert r["strength"] in (90, 50)
    assert any(r["psnr"] == "inf" for r in rows)  # JSON has no infinity: written as a string
    csv_rows = list(csv.DictReader(io.StringIO(export(cli, finished_runs["w1"], "csv"))))

    def ident(r: dict[str, Any]) -> tuple:
        strength = "" if r["strength"] is None else str(r["strength"])
        marked = r["marked"] if isinstance(r["marked"], str) else ("true" if r["marked"] else "false")
        return (r["sample"], r["method"], r["attack"], strength, marked, float(r["p_value"]))

    assert sorted(map(ident, rows)) == sorted(map(ident, csv_rows))


@pytest.mark.slow
def test_row_count_matches_the_plan(finished_runs: dict[str, Any]) -> None:
    cells = read_cells(finished_runs["w1"])
    assert len(cells) == E2E_ROWS
    combos = {(c["sample"], c["method"], c["attack"], c["strength"], c["marked"]) for c in cells.values()}
    assert len(combos) == E2E_ROWS  # every row is a different cell


@pytest.mark.slow
def test_workers_do_not_change_results(finished_runs: dict[str, Any]) -> None:
    one, two = read_cells(finished_runs["w1"]), read_cells(finished_runs["w2"])
    assert set(one) == set(two) and len(one) == E2E_ROWS
    for key, cell in one.items():
        other = two[key]
        for column in ("sample", "method", "attack", "strength", "marked", "score", "p_value", "detected",
                       "bits_matched", "psnr", "ssim", "error", "role"):
            assert cell[column] == other[column], (key, column, cell[column], other[column])


def test_run_honours_max_samples_and_per_method_attacks(cli: Cli, tmp_path: Path) -> None:
    copy_photos(tmp_path / "imgs", ("astronaut.png", "chelsea.png"))
    suite = tmp_path / "subset.toml"
    suite.write_text(
        '[samples]\nimages = ["imgs"]\n'
        '[[methods]]\nname = "dwtDctSvd"\nkey = "a"\nmax_samples = 1\nattacks = ["flip"]\n'
        '[[methods]]\nname = "dwtDct"\nkey = "b"\n'
        '[[attacks]]\nname = "jpeg"\nstrengths = [90]\n'
        '[[attacks]]\nname = "flip"\nstrengths = ["horizontal"]\n', encoding="utf-8")
    code, out, err = cli("run", suite, "--out", tmp_path / "run", "--workers", "1", "--no-progress")
    assert code == 0, err
    svd, dct = expected_cells(1, 1, [1]), expected_cells(2, 1, [1, 1])
    assert out.startswith(f"{svd + dct} cells run, 0 already done, 0 failed")
    cells = list(read_cells(tmp_path / "run").values())
    assert {(c["sample"], c["attack"]) for c in cells if c["method"] == "dwtDctSvd"} == {
        ("astronaut.png", "none"), ("astronaut.png", "flip")}
    assert len([c for c in cells if c["method"] == "dwtDct"]) == dct
    assert {c["wm_key"] for c in cells if c["method"] == "dwtDct"} == {"b"}
