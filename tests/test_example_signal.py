"""The example modality package (examples/wmbench-example-signal): a new kind of content as one package.

Unit level, the package is imported from the examples folder (``sys.path``) with the
registry's two registration functions replaced by recorders, so its ``@watermarker``
and ``@attack`` decorators do not register a ``signal`` method and attacks into this
test session (where no ``signal`` modality is registered). Checked: the Modality object
(metrics, sample kind, the generated built-in traces, loading and saving, the contract,
the edge cases), the mark's detection and its calibration under H0 over many keys,
and the attacks' determinism.

End to end (slow), the package is pip-installed into a fresh virtual environment
(:func:`testkit.fresh_venv`, as the other example-package tests do it) and the
``wmbench`` command line lists the modality, runs a suite on ``builtin:signals``,
writes the report, exports CSV and prints the verdict, with no file of wmbench's
own edited for it.
"""

from __future__ import annotations

import ast
import csv
import importlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from testkit import cli_env, fresh_venv

from wmbench import registry
from wmbench.api import (
    AttackSpec,
    DetectorRefused,
    EdgeCase,
    MetricSpec,
    Modality,
    SampleError,
    SampleKind,
    SuiteError,
    Watermarker,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "wmbench-example-signal"
PACKAGE = EXAMPLE / "wmbench_example_signal"
DIST = "wmbench-example-signal"
ALPHA = 0.05


def _import_example() -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """The package's modules, imported from the examples folder; what their decorators
    would have registered is recorded instead (name -> AttackSpec or Watermarker class)."""
    recorded: dict[str, Any] = {}
    saved = registry.register_attack, registry.register_method
    registry.register_attack = lambda spec: recorded.setdefault(spec.name, spec)  # type: ignore[assignment]
    registry.register_method = lambda cls: recorded.setdefault(cls.name, cls)  # type: ignore[assignment]
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    try:
        modules = [importlib.import_module(f"wmbench_example_signal.{name}")
                   for name in ("modality", "marks", "attacks", "view")]
    finally:
        registry.register_attack, registry.register_method = saved
    return (*modules, recorded)


modality_module, marks, attacks, view, REGISTERED = _import_example()
SIGNAL: Modality = modality_module.modality()


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The built-in traces are written under XDG_CACHE_HOME: a temporary one, never ~/.cache."""
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture(scope="module")
def traces() -> dict[str, np.ndarray]:
    """The 8 built-in traces, straight from the generator (no file involved)."""
    return {f"trace-{i}": modality_module.builtin_signal(i) for i in range(modality_module.BUILTIN_COUNT)}


def _false_positive_bound(n: int, alpha: float = ALPHA) -> int:
    """The count of p < alpha that n uniform p-values exceed with probability below 0.001."""
    return int(stats.binom.ppf(0.999, n, alpha))


def _read_only(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.flags.writeable = False  # code under test must never write to its input
    return array


# --- the Modality object -------------------------------------------------------------------


def test_the_modality_object_declares_what_the_core_needs() -> None:
    assert isinstance(SIGNAL, Modality)
    assert (SIGNAL.name, SIGNAL.title, SIGNAL.item_word, SIGNAL.cache_suffix) == ("signal", "Signals", "signal", ".npy")
    assert "1-D float64" in SIGNAL.contract and SIGNAL.description
    assert [m.name for m in SIGNAL.metrics] == ["snr", "correlation"]
    assert all(isinstance(m, MetricSpec) for m in SIGNAL.metrics)
    snr = SIGNAL.metric("snr")
    assert snr is not None and snr.label == "SNR" and snr.unit == "dB" and snr.higher_is_better
    assert snr.acceptable == 20.0 and "IFPI" in snr.acceptable_source and snr.judges_damage
    assert snr.reference.startswith("the clean original")
    correlation = SIGNAL.metric("correlation")
    assert correlation is not None and correlation.higher_is_better and correlation.acceptable is None
    assert SIGNAL.damage_metric == "snr"
    (kind,) = SIGNAL.sample_kinds
    assert isinstance(kind, SampleKind)
    assert (kind.field, kind.role, kind.builtin) == ("signals", "item", "builtin:signals")
    assert SIGNAL.settings is None and callable(SIGNAL.viewer)
    assert SIGNAL.pools.unpaired and SIGNAL.pools.unpaired_short
    assert not SIGNAL.source  # the registry fills it in (the distribution, once installed)


def test_builtin_signals_are_generated_deterministically(tmp_path: Path, private_cache: Path,
                                                         traces: dict[str, np.ndarray]) -> None:
    (kind,) = SIGNAL.sample_kinds
    samples = kind.discover(("builtin:signals",), tmp_path)
    assert [s.id for s in samples] == [f"trace-{i}" for i in range(8)]
    assert {s.modality for s in samples} == {"signal"} and {s.role for s in samples} == {"item"}
    paths = [Path(s.source) for s in samples]
    assert all(p.is_file() and p.suffix == ".npy" and private_cache in p.parents for p in paths)
    for sample in samples:
        item = SIGNAL.load(sample.source)
        assert item.dtype == np.float64 and item.shape == (4096,) and SIGNAL.problem(item) is None
        assert np.array_equal(item, traces[sample.id])  # the file holds exactly what the generator makes
    # Generated again from the seed: the same numbers; the files are written once.
    assert np.array_equal(modality_module.builtin_signal(3), traces["trace-3"])
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert [s.source for s in kind.discover(("builtin:signals",), tmp_path)] == [str(p) for p in paths]
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    # Eight different traces of a comparable scale, each with some noise on top.
    values = list(traces.values())
    assert all(not np.allclose(a, b) for i, a in enumerate(values) for b in values[i + 1:])
    assert all(0.3 < np.std(v) < 2.0 and abs(np.mean(v)) < 0.5 for v in values)


def test_folders_and_files_become_samples(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    np.save(folder / "a.npy", np.arange(5, dtype=np.int32))
    (folder / "b.csv").write_text("1.5\n-2\n\n3e-1\n", encoding="utf-8")
    (folder / "notes.txt").write_text("not a signal", encoding="utf-8")
    (kind,) = SIGNAL.sample_kinds
    samples = kind.discover(("traces", "traces/b.csv", "traces"), tmp_path)  # repeats count once
    assert [s.id for s in samples] == ["a.npy", "b.csv"]
    a, b = (SIGNAL.load(s.source) for s in samples)
    assert a.dtype == np.float64 and a.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert b.tolist() == [1.5, -2.0, 0.3]
    other = tmp_path / "other"
    other.mkdir()
    np.save(other / "a.npy", np.ones(3))
    assert [s.id for s in kind.discover(("traces", "other"), tmp_path)] == ["a.npy", "b.csv", "a.npy#2"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SuiteError, match="no signals"):
        kind.discover(("empty",), tmp_path)


def _write_npy(path: Path, array: Any, **kwargs: Any) -> Path:
    np.save(path, array, **kwargs)
    return path


BAD_INPUTS = {
    "missing.npy": (lambda p: p, "file not found"),
    "signal.wav": (lambda p: p.write_bytes(b"RIFF") and p, "not a signal file"),
    "words.csv": (lambda p: p.write_text("0.5\nabc\n", encoding="utf-8") and p, "line 2 is not a number"),
    "latin1.csv": (lambda p: p.write_bytes(b"0.5\n\xe9\n") and p, "not UTF-8"),
    "blank.csv": (lambda p: p.write_text("\n\n", encoding="utf-8") and p, "empty signal"),
    "image.npy": (lambda p: _write_npy(p, np.zeros((4, 4))), "expected one signal"),
    "empty.npy": (lambda p: _write_npy(p, np.zeros(0)), "empty signal"),
    "nan.npy": (lambda p: _write_npy(p, np.array([1.0, np.nan, 2.0])), "sample 1 is nan"),
    "complex.npy": (lambda p: _write_npy(p, np.ones(3, dtype=complex)), "expected real numbers"),
    "objects.npy": (lambda p: _write_npy(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),
                    "not a readable .npy"),
    "garbage.npy": (lambda p: p.write_bytes(b"\x93NUMPY nonsense") and p, "not a readable .npy"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_refused_with_one_line(name: str, tmp_path: Path) -> None:
    make, needle = BAD_INPUTS[name]
    path = make(tmp_path / name)
    with pytest.raises(SampleError) as info:
        SIGNAL.load(str(path))
    message = str(info.value)
    assert message.startswith(f"{name}: ") and needle in message and "\n" not in message, message


def test_a_column_vector_is_one_signal(tmp_path: Path) -> None:
    path = _write_npy(tmp_path / "column.npy", np.arange(4.0).reshape(4, 1))
    assert SIGNAL.load(str(path)).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_save_writes_npy_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    item = np.linspace(-1.0, 1.0, 101)
    path = tmp_path / f"marked{SIGNAL.cache_suffix}"
    SIGNAL.save(item, path)
    assert np.array_equal(SIGNAL.load(str(path)), item)
    SIGNAL.save(item * 2, path)  # overwrites in place of the old one
    assert np.array_equal(SIGNAL.load(str(path)), item * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left

    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError):
        SIGNAL.save(item * 3, path)
    assert np.array_equal(SIGNAL.load(str(path)), item * 2)  # the old file is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("item, ok", [
    (np.zeros(5), True),
    (np.zeros(0), True),
    (np.zeros(5, dtype=np.float32), False),
    (np.zeros((5, 1)), False),
    (np.array([1.0, np.inf]), False),
    ([0.0, 1.0], False),
    ("0.0", False),
])
def test_problem_names_what_breaks_the_contract(item: Any, ok: bool) -> None:
    problem = SIGNAL.problem(item)
    assert (problem is None) == ok, problem
    if problem is not None:
        assert problem.startswith("returned ")


# --- quality ---------------------------------------------------------------------------------


def test_snr_follows_its_stated_convention(traces: dict[str, np.ndarray]) -> None:
    x = traces["trace-0"]
    rng = np.random.default_rng(1)
    for fraction in (0.05, 0.1, 0.5):
        noisy = x + rng.standard_normal(x.size) * fraction * np.std(x)
        measured = SIGNAL.measure(x, noisy, {"attacked": True})
        assert measured["snr"] == pytest.approx(-20 * math.log10(fraction), abs=0.3)
        assert 0 < measured["correlation"] < 1
    offset = SIGNAL.measure(x + 100.0, x + 100.0 + 0.1 * np.std(x), {"attacked": True})  # the DC level is no signal
    assert offset["snr"] == pytest.approx(20.0)
    same = SIGNAL.measure(x, x.copy(), {"attacked": False})
    assert same == {"snr": math.inf, "correlation": 1.0}
    assert SIGNAL.measure(x, -x, {"attacked": True})["correlation"] == pytest.approx(-1.0)


@pytest.mark.parametrize("reference, item, needle", [
    (np.ones(8), np.ones(7), "7 samples, the original 8"),
    (np.zeros(0), np.zeros(0), "empty signal"),
    (np.full(8, 3.0), np.arange(8.0), "constant"),
])
def test_a_metric_that_cannot_be_measured_stays_empty_and_says_why(reference: np.ndarray, item: np.ndarray,
                                                                   needle: str) -> None:
    measured = SIGNAL.measure(reference, item, {"attacked": True})
    assert measured["snr"] is None and needle in measured["snr_missing"]
    assert measured["correlation"] is None and measured["correlation_missing"].startswith("not measured")


def test_edge_cases_are_a_fair_answer_for_every_attack() -> None:
    cases = SIGNAL.edge_cases()
    assert all(isinstance(c, EdgeCase) for c in cases)
    assert {c.item.size for c in cases} >= {0, 1}
    for case in cases:
        for name in ("additive_noise", "lowpass"):
            spec = REGISTERED[name]
            for strength in spec.strengths:
                out = spec(_read_only(case.item), strength, np.random.default_rng(0))
                assert SIGNAL.problem(out) is None and out.shape == case.item.shape, (name, case.label, strength)


# --- the mark ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def method() -> Watermarker:
    return marks.SpreadTrace()


@pytest.fixture(scope="module")
def marked(method: Watermarker, traces: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: method.embed(_read_only(x), "k1") for name, x in traces.items()}


def test_the_mark_is_a_signal_watermarker() -> None:
    cls = REGISTERED["spreadTrace"]
    assert cls is marks.SpreadTrace and issubclass(cls, Watermarker)
    assert cls.modality == "signal" and not cls.generates
    assert cls.parameters == {"strength": 0.05, "chip": 16}


def test_chips_are_fixed_by_the_key_alone() -> None:
    """The raw PCG64 stream is bit-for-bit stable across numpy versions: pinned here."""
    assert marks.chips("k1", 24).astype(int).tolist() == [
        1, -1, -1, -1, -1, 1, -1, 1, -1, 1, -1, -1, 1, 1, -1, 1, -1, -1, 1, 1, -1, -1, -1, -1]
    assert np.array_equal(marks.chips("k1", 100)[:24], marks.chips("k1", 24))
    assert not np.array_equal(marks.chips("k1", 256), marks.chips("k2", 256))


def test_marked_traces_are_detected_at_the_stated_cost(method: Watermarker, traces: dict[str, np.ndarray],
                                                       marked: dict[str, np.ndarray]) -> None:
    for name, item in marked.items():
        assert SIGNAL.problem(item) is None and item.shape == traces[name].shape
        result = method.detect(item, "k1")
        assert result.p_value < 1e-6 and result.score > 5, (name, result)
        assert result.bits_total == 256 and result.bits_total / 2 < result.bits_matched <= result.bits_total
        # chips of strength * std(x): SNR = -20 log10(0.05) = 26.02 dB
        assert SIGNAL.measure(traces[name], item, {})["snr"] == pytest.approx(26.02, abs=0.01)


def test_embed_is_deterministic_and_keyed(method: Watermarker, traces: dict[str, np.ndarray]) -> None:
    x = _read_only(traces["trace-2"])
    first = method.embed(x, "k1")
    assert np.array_equal(first, method.embed(x, "k1"))
    assert np.array_equal(first, marks.SpreadTrace().embed(x, "k1"))  # a fresh instance too
    assert not np.array_equal(first, method.embed(x, "k2"))


def test_unmarked_p_values_are_not_concentrated_below_alpha(method: Watermarker,
                                                             traces: dict[str, np.ndarray]) -> None:
    """8 clean traces x 100 keys, then 200 white-noise signals x 4 keys: p < alpha stays
    within a binomial bound and the p-values pass a Kolmogorov-Smirnov test of uniformity.

    Under H0 each key's chips are independent fair signs given the item, so the
    normalised correlation is N(0, 1) up to the CLT and its tail is uniform (see the
    docstring of marks.py). The bound is loose (0.999 quantile): p-values of one trace
    under many keys are not all independent.
    """
    p = np.array([method.detect(x, f"key-{i}").p_value for x in traces.values() for i in range(100)])
    assert (p < ALPHA).sum() <= _false_positive_bound(p.size), np.sort(p)[:20]
    assert (p < 0.01).sum() <= _false_positive_bound(p.size, 0.01), np.sort(p)[:20]
    assert stats.kstest(p, "uniform").pvalue > 0.001
    rng = np.random.default_rng(11)
    noise = np.array([method.detect(rng.standard_normal(4096), f"key-{i}").p_value for _ in range(200)
                      for i in range(4)])
    assert (noise < ALPHA).sum() <= _false_positive_bound(noise.size), np.sort(noise)[:20]
    assert stats.kstest(noise, "uniform").pvalue > 0.001


def test_wrong_keys_and_attacked_negatives_stay_calibrated(method: Watermarker, traces: dict[str, np.ndarray],
                                                           marked: dict[str, np.ndarray]) -> None:
    """Another key's mark, or noise and smoothing applied to a clean trace, is still H0."""
    wrong = np.array([method.detect(x, f"other-{i}").p_value for x in marked.values() for i in range(50)])
    assert (wrong < ALPHA).sum() <= _false_positive_bound(wrong.size), np.sort(wrong)[:20]
    attacked = []
    for n, x in enumerate(traces.values()):
        for attack_name, strength in (("additive_noise", 0.5), ("lowpass", 9)):
            out = REGISTERED[attack_name](x, strength, np.random.default_rng(n))
            attacked += [method.detect(out, f"key-{i}").p_value for i in range(25)]
    attacked_p = np.array(attacked)
    assert (attacked_p < ALPHA).sum() <= _false_positive_bound(attacked_p.size), np.sort(attacked_p)[:20]


def test_the_mark_survives_mild_attacks(method: Watermarker, marked: dict[str, np.ndarray]) -> None:
    for name, item in marked.items():
        noisy = REGISTERED["additive_noise"](item, 0.1, np.random.default_rng(0))
        smooth = REGISTERED["lowpass"](item, 5, np.random.default_rng(0))
        assert method.detect(noisy, "k1").p_value < 1e-4 and method.detect(smooth, "k1").p_value < 1e-4, name


def test_short_and_flat_signals(method: Watermarker) -> None:
    short = np.linspace(0.0, 1.0, 64 * 16 - 1)
    with pytest.raises(ValueError, match="at least 1024"):
        method.embed(short, "k1")
    with pytest.raises(DetectorRefused):  # recorded by the bench as "not detected"
        method.detect(short, "k1")
    flat = np.full(4096, 2.0)
    with pytest.raises(ValueError, match="constant"):
        method.embed(flat, "k1")
    result = method.detect(flat, "k1")
    assert result.p_value == 1.0 and result.score == 0.0


def test_parameters_trade_quality_for_evidence(traces: dict[str, np.ndarray]) -> None:
    x = traces["trace-5"]
    weak, strong = marks.SpreadTrace(strength=0.02), marks.SpreadTrace(strength=0.1)
    weak_item, strong_item = weak.embed(x, "k1"), strong.embed(x, "k1")
    assert SIGNAL.measure(x, strong_item, {})["snr"] < SIGNAL.measure(x, weak_item, {})["snr"]
    assert strong.detect(strong_item, "k1").score > weak.detect(weak_item, "k1").score
    assert marks.SpreadTrace(chip=8).detect(marks.SpreadTrace(chip=8).embed(x, "k1"), "k1").bits_total == 512
    for bad in ({"strength": 0.0}, {"chip": 0}, {"chip": 2.5}):
        with pytest.raises(ValueError):
            marks.SpreadTrace(**bad)


# --- the attacks ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, strengths, family", [
    ("additive_noise", (0.05, 0.1, 0.2, 0.5, 1.0), "noise"),
    ("lowpass", (3, 5, 9, 17, 33), "filter"),
])
def test_attacks_are_declared_weak_to_strong(name: str, strengths: tuple, family: str) -> None:
    spec = REGISTERED[name]
    assert isinstance(spec, AttackSpec) and spec.modality == "signal"
    assert spec.strengths == strengths and spec.tags == {"family": family} and spec.description


@pytest.mark.parametrize("name", ["additive_noise", "lowpass"])
def test_attacks_are_deterministic_and_leave_their_input_alone(name: str, traces: dict[str, np.ndarray]) -> None:
    spec = REGISTERED[name]
    x = _read_only(traces["trace-1"])
    for strength in spec.strengths:
        first = spec(x, strength, np.random.default_rng(42))
        assert SIGNAL.problem(first) is None and first.shape == x.shape
        assert np.array_equal(first, spec(x, strength, np.random.default_rng(42)))
        assert np.array_equal(x, traces["trace-1"])
    if name == "additive_noise":  # it draws from rng; lowpass draws nothing
        assert not np.array_equal(spec(x, 0.5, np.random.default_rng(1)), spec(x, 0.5, np.random.default_rng(2)))


@pytest.mark.parametrize("name", ["additive_noise", "lowpass"])
def test_damage_grows_along_the_sweep(name: str, traces: dict[str, np.ndarray]) -> None:
    spec = REGISTERED[name]
    for x in traces.values():
        snrs = [SIGNAL.measure(x, spec(x, s, np.random.default_rng(0)), {})["snr"] for s in spec.strengths]
        assert all(b <= a + 0.05 for a, b in zip(snrs, snrs[1:])), snrs


def test_attack_details() -> None:
    noise, lowpass = REGISTERED["additive_noise"], REGISTERED["lowpass"]
    x = np.sin(np.linspace(0.0, 40.0, 4000))
    assert SIGNAL.measure(x, noise(x, 0.1, np.random.default_rng(3)), {})["snr"] == pytest.approx(20.0, abs=0.3)
    assert np.array_equal(lowpass(x, 1, np.random.default_rng(0)), x)
    assert lowpass(np.arange(5.0), 3, np.random.default_rng(0)).tolist() == pytest.approx([1 / 3, 1, 2, 3, 11 / 3])
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="window"):
            lowpass(x, bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-negative"):
        noise(x, -0.1, np.random.default_rng(0))


def test_view_polyline_fits_the_panel() -> None:
    points = [tuple(map(float, p.split(","))) for p in view.polyline(np.array([0.0, 1.0, -5.0]), 0.0, 1.0).split()]
    assert [x for x, _ in points] == [0.0, view.WIDTH / 2, view.WIDTH]
    assert all(0 <= y <= view.HEIGHT for _, y in points) and points[1][1] < points[0][1]
    assert view.polyline(np.zeros(0), 0.0, 1.0) == ""


def test_the_example_imports_nothing_from_wmbench_but_the_public_api() -> None:
    for module in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert {m for m in imported if m.split(".")[0] == "wmbench"} <= {"wmbench.api"}, module.name
        assert {m.split(".")[0] for m in imported} <= {
            "__future__", "dataclasses", "hashlib", "math", "os", "pathlib", "tempfile", "typing", "numpy",
            "wmbench", "wmbench_example_signal"}, module.name


# --- end to end: installed with pip into a fresh environment --------------------------------

SUITE = '''
[suite]
name = "example-signal"
seed = 7
alpha = 0.01

[samples]
signals = ["builtin:signals"]

[[methods]]
name = "spreadTrace"
key = "k1"
max_samples = 4

[[attacks]]
name = "additive_noise"
strengths = [0.1, 1.0]

[[attacks]]
name = "lowpass"
strengths = [5, 33]
'''


class Installed:
    """The fresh environment's python and the environment its commands run with."""

    def __init__(self, python: Path, env: dict[str, str]) -> None:
        self.python, self.env = python, env

    def wmbench(self, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.python), "-m", "wmbench", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, env=self.env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("example_signal")
    env = {**cli_env(), "XDG_CACHE_HOME": str(base / "xdg-cache")}  # the built-in traces land here
    return Installed(fresh_venv(base, EXAMPLE, env=env), env)


@pytest.fixture(scope="module")
def run_dir(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("example_signal_run")
    (work / "suite.toml").write_text(SUITE, encoding="utf-8")
    run = installed.wmbench("run", "suite.toml", "--out", "out", "--workers", "2", "--no-progress", cwd=work)
    assert run.returncode == 0, run.stdout + run.stderr
    return work / "out"


@pytest.mark.slow
def test_installed_modality_is_listed_with_its_distribution(installed: Installed, tmp_path: Path) -> None:
    out = installed.wmbench("list", "modalities", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert lines["signal"].endswith(f"({DIST}:wmbench_example_signal.modality:modality)"), lines["signal"]
    assert "samples: signals; metrics: snr, correlation" in lines["signal"]
    assert {"image", "text"} <= set(lines)  # the built-ins are still there
    methods = installed.wmbench("list", "methods", cwd=tmp_path)
    line = next(x for x in methods.stdout.splitlines() if x.startswith("spreadTrace "))
    assert " signal " in line and line.endswith(f"[{DIST}:wmbench_example_signal.marks]"), line
    listed = installed.wmbench("list", "attacks", cwd=tmp_path)
    for name in ("additive_noise", "lowpass"):
        line = next(x for x in listed.stdout.splitlines() if x.startswith(f"{name} "))
        assert " signal " in line and line.endswith(f"({DIST}:wmbench_example_signal.attacks)"), line
    samples = installed.wmbench("list", "samples", cwd=tmp_path)
    builtin = [line.split() for line in samples.stdout.splitlines() if line.startswith("builtin:signals")]
    assert [row[1] for row in builtin] == [f"trace-{i}" for i in range(8)]
    assert all(Path(row[2]).is_file() and row[2].startswith(installed.env["XDG_CACHE_HOME"]) for row in builtin)


@pytest.mark.slow
def test_suite_runs_and_exports_snr(installed: Installed, run_dir: Path) -> None:
    out = installed.wmbench("export", str(run_dir), "--format", "csv", cwd=run_dir.parent)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {"snr", "correlation"} <= set(rows[0]) and "psnr" not in rows[0]
    # 4 traces x (clean + 2 attacks x 2 strengths), each marked and unmarked.
    assert len(rows) == 4 * 5 * 2 and {r["modality"] for r in rows} == {"signal"}
    assert all(r["error"] == "" for r in rows), [r["error"] for r in rows]
    snr = [float(r["snr"]) for r in rows]  # every cell has a number ("inf": unmarked and unattacked)
    assert all(math.isfinite(v) for r, v in zip(rows, snr) if r["marked"] == "true")
    clean = [r for r in rows if r["attack"] == "none" and r["marked"] == "true"]
    assert len(clean) == 4 and all(float(r["snr"]) == pytest.approx(26.02, abs=0.01) for r in clean)
    assert all(float(r["p_value"]) < 1e-6 and r["detected"] == "true" for r in clean)
    noisy = {r["sample"]: float(r["snr"]) for r in rows
             if r["attack"] == "additive_noise" and r["strength"] == "1.0" and r["marked"] == "true"}
    assert len(noisy) == 4 and all(-1.5 < v < 1.5 for v in noisy.values())  # noise as strong as the signal: 0 dB


@pytest.mark.slow
def test_report_shows_the_modality_and_its_metrics(installed: Installed, run_dir: Path) -> None:
    out = installed.wmbench("report", str(run_dir), cwd=run_dir.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    report = Path(out.stdout.strip().splitlines()[-1])
    if not report.is_absolute():
        report = run_dir.parent / report
    html = report.read_text(encoding="utf-8")
    assert ">SNR" in html and "Correlation" in html  # the metrics' column labels, from the manifest
    assert "Signals" in html  # the modality's title
    assert "Signal view" in html and "<polyline" in html and "No example" not in html  # the plugin's own viewer


@pytest.mark.slow
def test_verdict_runs_on_the_signal_run(installed: Installed, run_dir: Path) -> None:
    out = installed.wmbench("verdict", str(run_dir), cwd=run_dir.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "spreadTrace" in out.stdout and "SNR >= 20 dB" in out.stdout
    data = installed.wmbench("verdict", str(run_dir), "--format", "json", cwd=run_dir.parent)
    assert data.returncode == 0, data.stderr
    json.loads(data.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["additive_noise", "lowpass"])
def test_installed_attacks_pass_check_plugin(installed: Installed, tmp_path: Path, name: str) -> None:
    out = installed.wmbench("check-plugin", name, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == f"attack {name} (signal) from {DIST}:wmbench_example_signal.attacks"
    assert out.stdout.rstrip().endswith(f"{name}: 6 passed, 0 failed")


@pytest.mark.slow
def test_embed_and_detect_a_csv_file(installed: Installed, tmp_path: Path) -> None:
    np.savetxt(tmp_path / "trace.csv", modality_module.builtin_signal(4))
    embed = installed.wmbench("embed", "--method", "spreadTrace", "--key", "k1", "trace.csv", "marked.npy",
                              cwd=tmp_path)
    assert embed.returncode == 0, embed.stderr
    assert json.loads(embed.stdout)["snr"] == pytest.approx(26.02, abs=0.01)
    detect = installed.wmbench("detect", "--method", "spreadTrace", "--key", "k1", "marked.npy", cwd=tmp_path)
    assert detect.returncode == 0, detect.stderr
    assert json.loads(detect.stdout)["detected"] is True


# A plugin modality's errors reach the user as the built-ins' do: one line, exit code 2
# (SampleError and SuiteError come from wmbench.api).

@pytest.mark.slow
def test_a_bad_signal_file_is_a_one_line_cli_error(installed: Installed, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("1.0\nabc\n", encoding="utf-8")
    out = installed.wmbench("detect", "--method", "spreadTrace", "--key", "k1", "bad.csv", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "bad.csv: line 2 is not a number" in out.stderr


@pytest.mark.slow
def test_an_empty_signals_folder_is_a_one_line_suite_error(installed: Installed, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "suite.toml").write_text(SUITE.replace('"builtin:signals"', '"empty"'), encoding="utf-8")
    out = installed.wmbench("run", "suite.toml", "--out", "out", "--workers", "1", "--no-progress", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "no signals" in out.stderr
