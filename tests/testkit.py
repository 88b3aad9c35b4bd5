"""Helpers shared by the core's end-to-end tests: suite writers, CLI runners, store readers.

Imported by test modules as ``testkit`` (tests/ is on sys.path under pytest); the
fixtures built on these live in conftest.py.
"""


from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from wmbench.modalities.image.io import skimage_data_dir

# Columns every exported row carries (the brief's list; export may add more).


EXPORT_COLUMNS = ("sample", "modality", "method", "attack", "strength", "marked", "score", "p_value",
                  "detected", "psnr", "ssim", "seconds", "error")


def skimage_photo(name: str) -> Path:
    path = skimage_data_dir() / name
    assert path.is_file(), f"scikit-image no longer ships {name}"
    return path


def copy_photos(folder: Path, names: Sequence[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(skimage_photo(name), folder / name)
    return folder


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def suite_text(
    *,
    images: Sequence[str] = ("imgs",),
    methods: Sequence[tuple[str, str] | tuple[str, str, int]] = (("dwtDctSvd", "k1"),),
    attacks: Sequence[tuple[str, Sequence[Any]]] = (("jpeg", (90, 50)),),
    name: str = "tiny",
    seed: int = 3,
    alpha: float = 0.01,
) -> str:
    lines = ["[suite]", f"name = {toml_value(name)}", f"seed = {seed}", f"alpha = {alpha}", "",
             "[samples]", f"images = {toml_value(list(images))}", ""]
    for m in methods:
        lines += ["[[methods]]", f"name = {toml_value(m[0])}", f"key = {toml_value(m[1])}"]
        if len(m) > 2:
            lines.append(f"max_samples = {m[2]}")
        lines.append("")
    for attack_name, strengths in attacks:
        lines += ["[[attacks]]", f"name = {toml_value(attack_name)}", f"strengths = {toml_value(list(strengths))}", ""]
    return "\n".join(lines)


def expected_cells(samples: int, methods: int, strengths_per_attack: Sequence[int]) -> int:
    """samples x methods x (1 clean + every swept strength) x (marked, unmarked)."""
    return samples * methods * (1 + sum(strengths_per_attack)) * 2


def run_cli(args: Sequence[str], cwd: Path, timeout: float = 120, **popen: Any) -> subprocess.CompletedProcess:
    """The real command line in a fresh interpreter (``python -m wmbench``)."""
    return subprocess.run(
        [sys.executable, "-m", "wmbench", *map(str, args)], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env=cli_env(), **popen,
    )


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def invoke(*argv: Any) -> tuple[int, str, str]:
    """In-process ``wmbench.cli.main(argv)`` -> (exit code, stdout, stderr).

    The same code path as the ``wmbench`` command without a new interpreter (and its
    ~4 s of imports). main() replaces warnings.formatwarning; it is put back afterwards.
    """
    from wmbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    formatwarning = warnings.formatwarning
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        warnings.formatwarning = formatwarning
    return code, out.getvalue(), err.getvalue()


def read_cells(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every stored cell of a run folder, keyed by cell key, straight from SQLite.

    The store keeps quality metrics in one JSON column (``metrics``); like the export,
    this flattens them into one key per metric of the run (``cell["psnr"]``,
    ``cell["similarity"]``) on every cell: each metric the run's modalities declare and
    any other stored one, None where a cell has no value (a text cell's PSNR).
    Infinity, stored as the string "inf", comes back a float.
    """
    from wmbench import registry

    db = sqlite3.connect(Path(run_dir) / "results.sqlite")
    try:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM cells")]
    finally:
        db.close()
    names: list[str] = []
    for modality in dict.fromkeys(row["modality"] for row in rows):
        try:
            names += [m.name for m in registry.get_modality(modality).metrics]
        except registry.RegistryError:
            pass
    stored = [json.loads(row["metrics"]) if row["metrics"] else {} for row in rows]
    names = list(dict.fromkeys(names + [name for metrics in stored for name in metrics]))
    for row, metrics in zip(rows, stored):
        for name in names:
            assert name not in row, f"metric {name!r} shadows a column of the store"
            value = metrics.get(name)
            row[name] = float(value) if isinstance(value, str) else value
    cells = {r["cell_key"]: r for r in rows}
    assert len(cells) == len(rows), "duplicate cell keys in the store"
    return cells


def assert_one_line_error(code: int, stderr: str, *needles: str) -> None:
    """The CLI's user-error contract: exit 2, one ``wmbench: error:`` line, no traceback."""
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("wmbench: error: "), stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def run_python(python: Path, *args: Any, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python ARGS...`` (another environment's interpreter) in ``cwd``, output captured."""
    return subprocess.run([str(python), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=cli_env())


def fresh_venv(base: Path, *packages: Path, env: dict[str, str] | None = None) -> Path:
    """A new virtual environment under ``base`` with ``packages`` (local folders) pip-installed;
    returns its ``python``.

    Offline and fast, as the example-plugin tests need it: the new environment sees this
    one's packages (wmbench in editable mode, numpy, pip, setuptools) through a ``.pth``
    file that calls ``site.addsitedir`` (so the parent's own ``.pth`` files run too), and
    pip runs with ``--no-index --no-deps --no-build-isolation``. Each package is built from
    a copy, since pip leaves ``build/`` and ``*.egg-info`` next to the sources it builds.
    Nothing is installed into the environment running the tests.
    """
    import sysconfig

    env = env if env is not None else cli_env()
    base.mkdir(parents=True, exist_ok=True)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, timeout=120, check=True, env=env)
    parent = sysconfig.get_paths()["purelib"]
    Path(site.stdout.strip(), "_wmbench_parent_env.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n", encoding="utf-8")
    for package in packages:
        source = shutil.copytree(package, base / "src" / Path(package).name,
                                 ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        pip = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation",
                              "--disable-pip-version-check", "--quiet", str(source)],
                             cwd=base, capture_output=True, text=True, timeout=300, env=env)
        assert pip.returncode == 0, f"pip install {package.name} failed:\n{pip.stdout}{pip.stderr}"
    return python
