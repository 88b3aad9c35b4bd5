"""The example plugin package (examples/wmbench-example-attacks), installed with pip.

This is the path a third party takes: a separate distribution whose attacks reach
wmbench only through the ``wmbench.attacks`` entry-point group. The package is
installed into a fresh virtual environment, never into the project's own, so the
other tests keep seeing only the built-in attacks.

Offline and fast: the new environment reuses this one's packages (wmbench, torch,
setuptools, pip) through a ``.pth`` file instead of installing them again, and pip
runs with ``--no-index --no-deps --no-build-isolation``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testkit import fresh_venv, run_python

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "wmbench-example-attacks"
SOURCE = "wmbench-example-attacks:wmbench_example_attacks.attacks"  # distribution:module, as listed

SUITE = '''
[suite]
name = "example-plugin"
seed = 5

[samples]
images = ["builtin:images"]
texts = ["builtin:texts"]

[[methods]]
name = "dwtDctSvd"
key = "k1"
max_samples = 1

[[methods]]
name = "lexical"
key = "k1"
max_samples = 2

[[attacks]]
name = "posterize"
strengths = [6, 3]

[[attacks]]
name = "vowel_drop"
strengths = [0.25, 1.0]
'''


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv that sees this environment's packages and has the example installed
    (offline: see testkit.fresh_venv)."""
    return fresh_venv(tmp_path_factory.mktemp("example_plugin"), EXAMPLE)


def test_installed_attacks_are_listed_with_their_distribution(venv_python: Path, tmp_path: Path) -> None:
    out = run_python(venv_python, "-m", "wmbench", "list", "attacks", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert lines["posterize"].endswith(f"({SOURCE})") and "[6, 5, 4, 3, 2]" in lines["posterize"]
    assert lines["vowel_drop"].endswith(f"({SOURCE})") and " text " in lines["vowel_drop"]
    assert lines["jpeg"].endswith("(wmbench:wmbench_attacks.image_compression)")  # built-ins still there


def test_installed_attack_passes_check_plugin(venv_python: Path, tmp_path: Path) -> None:
    out = run_python(venv_python, "-m", "wmbench", "check-plugin", "posterize", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == f"attack posterize (image) from {SOURCE}"
    assert out.stdout.rstrip().endswith("posterize: 6 passed, 0 failed")


def test_suite_runs_the_installed_attacks(venv_python: Path, tmp_path: Path) -> None:
    (tmp_path / "suite.toml").write_text(SUITE, encoding="utf-8")
    run = run_python(venv_python, "-m", "wmbench", "run", "suite.toml", "--out", "out", "--workers", "1",
               "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    export = run_python(venv_python, "-m", "wmbench", "export", "out", "--format", "jsonl", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    rows = [json.loads(line) for line in export.stdout.splitlines()]
    poster = [r for r in rows if r["attack"] == "posterize"]
    vowels = [r for r in rows if r["attack"] == "vowel_drop"]
    # 1 photo x 2 strengths and 2 texts x 2 strengths, each marked and unmarked.
    assert len(poster) == 4 and {r["method"] for r in poster} == {"dwtDctSvd"}
    assert len(vowels) == 8 and {r["method"] for r in vowels} == {"lexical"}
    assert all(r["error"] is None for r in poster + vowels), [r["error"] for r in poster + vowels]
    # The attacks did what they say: 3 bits cost more PSNR than 6; every vowel gone
    # leaves a text further from the original than a quarter of them.
    psnr = {r["strength"]: r["psnr"] for r in poster if r["marked"]}
    assert psnr[3] < psnr[6]
    similarity = {(r["sample"], r["strength"]): r["similarity"] for r in vowels if r["marked"]}
    if None not in similarity.values():
        for sample in {s for s, _ in similarity}:
            assert similarity[(sample, 1.0)] < similarity[(sample, 0.25)]
