"""The run manifest: the report, verdict and export read the store alone.

A run folder must stay readable after its suite file, plugin folder and sample folders
are deleted (an archived run, a report rebuilt on another machine): the numbers, the
verdict and every table come back identical; only the example views, which need the
original items, turn into notes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from testkit import copy_photos, invoke, run_cli

from wmbench.store import POSITIVE, TWIN, UNPAIRED, Store

REPO_TEXTS = Path(__file__).resolve().parents[1] / "samples" / "texts"

PLUGIN = '''
import numpy as np
from wmbench.api import attack

@attack("posterize_m", modality="image", strengths=[5, 3], tags={"family": "quantise"})
def posterize_m(image, bits, rng):
    """Keep the top ``bits`` bits of every channel."""
    mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
    return image & mask
'''

SUITE = '''
plugins = ["plugins"]

[suite]
name = "manifest-test"
seed = 5

[samples]
images = ["imgs"]
texts = ["texts"]
prompts = ["prompts.txt"]

[text]
max_new_tokens = 40

[[methods]]
name = "dwtDct"

[[methods]]
name = "kgw"
max_samples = 2

[[attacks]]
name = "jpeg"
strengths = [90, 50]

[[attacks]]
name = "posterize_m"

[[attacks]]
name = "typo"
strengths = [0.1]

[[attacks]]
name = "truncate"
strengths = [20]
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    copy_photos(root / "imgs", ["coffee.png", "chelsea.png"])
    (root / "texts").mkdir()
    for f in sorted((REPO_TEXTS / "human").glob("*.txt"))[:2]:
        shutil.copyfile(f, root / "texts" / f.name)
    (root / "prompts.txt").write_text("The harbour was quiet that morning, and\nOur plan for the garden\n", "utf-8")
    (root / "plugins").mkdir()
    (root / "plugins" / "posterize.py").write_text(PLUGIN, "utf-8")
    (root / "suite.toml").write_text(SUITE, "utf-8")
    result = run_cli(["run", "suite.toml", "--out", "run", "--workers", "1", "--no-progress"], cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr
    return root


def _manifest(run_dir: Path) -> dict:
    with Store(run_dir, create=False) as store:
        manifest = store.manifest()
    assert manifest is not None
    return manifest


@pytest.mark.slow
def test_the_manifest_holds_the_resolved_plan(project: Path) -> None:
    manifest = _manifest(project / "run")
    assert [m["label"] for m in manifest["methods"]] == ["dwtDct", "kgw"]
    kgw = manifest["methods"][1]
    assert kgw["generates"] and dict(kgw["params"])["max_new_tokens"] == 40  # inherited from [text]
    attacks = {a["label"]: a for a in manifest["attacks"]}
    assert attacks["posterize_m"]["strengths"] == [5, 3] and attacks["posterize_m"]["tags"]["family"] == "quantise"
    assert attacks["truncate"]["tags"]["prefix"] is True
    assert attacks["jpeg"]["unit"] == "JPEG quality" and attacks["posterize_m"]["unit"] == ""
    assert attacks["posterize_m"]["sources"] == [str((project / "plugins" / "posterize.py").resolve())]
    samples = {s["id"]: s for s in manifest["samples"]}
    assert samples["coffee.png"]["role"] == "item" and samples["prompts:1"]["role"] == "prompt"
    assert set(manifest["modalities"]) == {"image", "text"}
    assert [m["name"] for m in manifest["modalities"]["image"]["metrics"]] == ["psnr", "ssim", "kept"]
    plugin = manifest["plugins"]["files"][0]
    digest = hashlib.sha256((project / "plugins" / "posterize.py").read_bytes()).hexdigest()
    assert plugin == {"path": str((project / "plugins" / "posterize.py").resolve()), "sha256": digest}
    for marked, unmarked in manifest["cache"].values():
        assert (project / "run" / marked).is_file() and not Path(marked).is_absolute()


@pytest.mark.slow
def test_every_record_names_its_role(project: Path) -> None:
    with Store(project / "run", create=False) as store:
        records = list(store.records())
    roles = {(r.method, r.sample, r.marked): r.role for r in records}
    assert roles[("dwtDct", "coffee.png", True)] == POSITIVE
    assert roles[("dwtDct", "coffee.png", False)] == TWIN
    assert roles[("kgw", "prompts:1", False)] == TWIN  # the unmarked generation of the same prompt
    human = sorted((project / "texts").iterdir())[0].name
    assert roles[("kgw", human, False)] == UNPAIRED and ("kgw", human, True) not in roles


def _tables(html: str) -> list[str]:
    verdict = re.findall(r'<section class="verdict" id="verdict">.*?</section>', html, re.S)
    tables = re.findall(r"<table class=\"data sortable\">.*?</table>", html, re.S)
    assert verdict and len(tables) >= 4
    return verdict + tables


@pytest.mark.slow
def test_report_rebuilds_after_suite_plugins_and_samples_are_gone(project: Path, tmp_path: Path) -> None:
    moved = tmp_path / "archived-run"
    shutil.copytree(project / "run", moved)
    before = run_cli(["report", moved, "-o", tmp_path / "before.html"], cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    verdict_before = run_cli(["verdict", moved, "--format", "json"], cwd=tmp_path).stdout
    export_before = run_cli(["export", moved], cwd=tmp_path).stdout
    html_before = (tmp_path / "before.html").read_text("utf-8")
    assert "posterize_m" in html_before and "Gallery" in html_before
    assert "strength: JPEG quality (weak → strong)" in html_before  # the unit the attack declares

    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(project), str(elsewhere))  # suite file, plugin folder and samples: gone from where they were
    try:
        after = run_cli(["report", moved, "-o", tmp_path / "after.html"], cwd=tmp_path)
        assert after.returncode == 0, after.stderr
        html_after = (tmp_path / "after.html").read_text("utf-8")
        assert _tables(html_after) == _tables(html_before)
        assert run_cli(["verdict", moved, "--format", "json"], cwd=tmp_path).stdout == verdict_before
        assert run_cli(["export", moved], cwd=tmp_path).stdout == export_before
        assert "the original is not available here" in html_after  # the example says why, the report renders
    finally:
        shutil.move(str(elsewhere), str(project))


@pytest.mark.slow
def test_report_reads_no_suite_text(project: Path, tmp_path: Path) -> None:
    """Even the suite text in the metadata is not needed: drop it and the tables stay."""
    copy = tmp_path / "run"
    shutil.copytree(project / "run", copy)
    code, _, err = invoke("report", copy, "-o", tmp_path / "a.html")
    assert code == 0, err
    with Store(copy) as store:
        store.db.execute("DELETE FROM meta WHERE name IN ('suite_text', 'suite_path')")
        store.db.commit()
    code, _, err = invoke("report", copy, "-o", tmp_path / "b.html")
    assert code == 0, err
    assert _tables((tmp_path / "b.html").read_text("utf-8")) == _tables((tmp_path / "a.html").read_text("utf-8"))


@pytest.mark.slow
def test_export_has_one_column_per_declared_metric(project: Path) -> None:
    code, out, err = invoke("export", project / "run", "--format", "jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    image = next(r for r in rows if r["modality"] == "image" and r["marked"] and r["attack"] == "none")
    text = next(r for r in rows if r["modality"] == "text" and r["marked"] and r["attack"] == "none")
    assert image["psnr"] > 30 and 0 < image["ssim"] <= 1 and image["similarity"] is None
    assert text["perplexity"] > 1 and text["psnr"] is None
    assert {r["role"] for r in rows} == {POSITIVE, TWIN, UNPAIRED}
