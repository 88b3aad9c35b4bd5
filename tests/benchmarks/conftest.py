"""Shared machinery for the performance benchmarks (``make bench``).

Two ways of doing the same work on the same cells:

* the **bench** side: ``run_suite(parse_suite(text), run_dir, workers=...)``, i.e. the
  whole of wmbench (planning, marked-image cache, per-job image loading, SQLite);
* the **bare** side: a loop written directly against imwatermark
  (``WatermarkEncoder``/``WatermarkDecoder`` with ``"bits"``, BGR arrays) that calls the
  very same attack functions (``registry.get_attack(name).apply``: attacks are plugins,
  the same code either way) and the same quality metrics. For each sample it embeds
  once, decodes the clean marked and unmarked image (wmbench's "none" cells), then for
  each attack x strength attacks the marked image and the original with the same rng
  seed, decodes both, counts matching bits and measures PSNR and SSIM.

These machines have 2 noisy cores, so the tests compare **ratios of times measured in
the same run**, interleaved (A B B A A B ...), never absolute times. Goal ratios are
asserted only with ``--benchmark-enable``; with benchmarks disabled (the default, as
in CI) every test runs one small round as a smoke test of correctness.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import gc
import itertools
import json
import math
import multiprocessing
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple, Self

import numpy as np
import pytest
from PIL import Image

from wmbench import registry
from wmbench.api import Sample
from wmbench.cells import NONE_ATTACK, attack_seed
from wmbench.execute import limit_threads
from wmbench.executors.local import threads_per_worker
from wmbench.modalities.image import quality
from wmbench.modalities.image.methods import payload_bits
from wmbench.runner import RunSummary, run_suite
from wmbench.modalities.image.io import BUILTIN_IMAGES, skimage_data_dir
from wmbench.store import Store
from wmbench.suite import parse_suite

# (sample, attack label, strength index, marked) -> (bits matched, psnr, ssim)
Outcomes = dict[tuple[str, str, int, bool], tuple[int | None, float | None, float | None]]


@dataclass(frozen=True)
class Workload:
    """One suite, expressible both as a suite file and as a bare loop.

    Samples are the first ``samples`` built-in photos (``builtin:images`` with
    ``max_samples``), so both sides read the very same files.
    """

    method: str
    samples: int
    attacks: tuple[tuple[str, tuple[Any, ...]], ...]
    seed: int = 11
    key: str = "wmbench-bench"

    @property
    def cells(self) -> int:
        """samples x (1 clean + every swept strength) x (marked, unmarked)."""
        return self.samples * (1 + sum(len(s) for _, s in self.attacks)) * 2

    def suite_text(self) -> str:
        lines = ["[suite]", 'name = "bench"', f"seed = {self.seed}", "alpha = 0.01", "",
                 "[samples]", 'images = ["builtin:images"]', "",
                 "[[methods]]", f'name = "{self.method}"', f'key = "{self.key}"',
                 f"max_samples = {self.samples}", ""]
        for name, strengths in self.attacks:
            lines += ["[[attacks]]", f'name = "{name}"', f"strengths = {list(strengths)!r}", ""]
        return "\n".join(lines)

    def sample_files(self) -> list[Sample]:
        data = skimage_data_dir()
        return [Sample(id=Path(n).stem, modality="image", source=str(data / n))
                for n in BUILTIN_IMAGES[: self.samples]]

    def describe(self) -> str:
        sweep = ", ".join(f"{n}x{len(s)}" for n, s in self.attacks)
        return f"{self.method}, {self.samples} photo(s), {sweep}: {self.cells} cells"


class Timing(NamedTuple):
    """Wall-clock seconds (the goals) and this process's CPU seconds, all threads (a
    steadier second opinion on a busy machine; meaningless with worker processes)."""

    wall: float
    cpu: float
    shared: float = float("nan")  # seconds inside the shared work (see SharedWork)
    calls: dict[str, int] | None = None  # calls of each shared-work function, e.g. "encode"


class _Clock:
    def __enter__(self) -> Self:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timing = Timing(time.perf_counter() - self.wall0, time.process_time() - self.cpu0)


# -- the two sides ---------------------------------------------------------------------

def run_bench(workload: Workload, run_dir: Path, workers: int = 1,
              hang_timeout: float | None = None) -> tuple[Timing, RunSummary]:
    """Time wmbench end to end (suite parsing included) into a fresh ``run_dir``.

    With ``workers > 1`` and ``hang_timeout``, a watchdog kills this process's worker
    processes after that many seconds and the test fails with the reason, instead of
    the whole session hanging on a deadlocked pool.
    """
    gc.collect()
    hung = threading.Event()

    def kill_workers() -> None:
        hung.set()
        for child in multiprocessing.active_children():  # only this process's own children
            child.kill()

    watchdog = threading.Timer(hang_timeout, kill_workers) if workers > 1 and hang_timeout else None
    if watchdog:
        watchdog.daemon = True
        watchdog.start()
    clock = _Clock()
    try:
        with clock:
            suite = parse_suite(workload.suite_text(), "bench.toml", run_dir.parent)
            summary = run_suite(suite, run_dir, workers=workers)
    except Exception as exc:
        if not hung.is_set():
            raise
        summary, error = None, exc
    finally:
        if watchdog:
            watchdog.cancel()
    if hung.is_set():
        pytest.fail(
            f"run_suite(workers={workers}) did not finish within {hang_timeout:.0f} s; its worker processes "
            f"were killed. A cause seen before: workers forked from a process that had used OpenCV's "
            f"thread pool (e.g. after a workers=1 run) deadlock in cv2.setNumThreads() in their initializer "
            f"(execute.limit_threads), joining threads that do not exist after fork()."
            + (f" run_suite then raised {type(error).__name__}: {error}" if summary is None else ""),
            pytrace=False,
        )
    return clock.timing, summary


def bench_outcomes(run_dir: Path) -> Outcomes:
    with Store(run_dir, create=False) as store:
        records = list(store.records())
    errors = [f"{r.sample}/{r.attack}/{r.strength}: {r.error}" for r in records if r.error]
    assert not errors, errors[:3]
    return {(r.sample, r.attack, r.strength_index, r.marked): (r.bits_matched, r.metric("psnr"), r.metric("ssim"))
            for r in records}


def first_result_seconds(run_dir: Path) -> float:
    """Seconds from the run's start to its first stored job: with workers, mostly the
    cost of starting them (the first job is an embed either way)."""
    db = sqlite3.connect(Path(run_dir) / "results.sqlite")
    try:
        first = db.execute("SELECT MIN(finished_at) FROM cells").fetchone()[0]
        started = json.loads(db.execute("SELECT value FROM meta WHERE name = 'started_at'").fetchone()[0])
    finally:
        db.close()
    return float(first) - float(started)


def run_bare(workload: Workload) -> tuple[Timing, Outcomes]:
    """The same cells with imwatermark called directly; returns (timing, outcomes).

    Runs under whatever thread limits are in force: the ``single_process_threads``
    fixture applies the ones ``run_suite(workers=1)`` uses.
    """
    gc.collect()
    with _Clock() as clock:
        out = _bare_loop(workload)
    return clock.timing, out


def _bare_loop(workload: Workload) -> Outcomes:
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    payload = payload_bits(workload.key)
    attacks = [(label, strengths, registry.get_attack(label).apply) for label, strengths in workload.attacks]
    method = workload.method
    decoder = WatermarkDecoder("bits", len(payload))
    out: Outcomes = {}
    for sample in workload.sample_files():
        with Image.open(sample.source) as im:
            original = np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))
        encoder = WatermarkEncoder()
        encoder.set_watermark("bits", payload.tolist())
        marked_bgr = encoder.encode(np.ascontiguousarray(original[:, :, ::-1]), method)
        marked = np.ascontiguousarray(marked_bgr[:, :, ::-1])

        def measure(image: np.ndarray, original: np.ndarray) -> tuple[int, float | None, float | None]:
            bits = decoder.decode(np.ascontiguousarray(image[:, :, ::-1]), method)
            matched = int(np.sum(np.asarray(bits, dtype=np.uint8) == payload))
            return matched, quality.psnr(original, image), quality.ssim(original, image)

        for is_marked, image in ((True, marked), (False, original)):
            out[(sample.id, NONE_ATTACK, 0, is_marked)] = measure(image, original)
        for label, strengths, apply in attacks:
            for index, strength in enumerate(strengths):
                for is_marked, image in ((True, marked), (False, original)):
                    rng = np.random.default_rng(attack_seed(workload.seed, sample.id, label, index))
                    out[(sample.id, label, index, is_marked)] = measure(apply(image, strength, rng), original)
    return out


def assert_same_outcomes(expected: Outcomes, got: Outcomes, what: str) -> None:
    """Same cells, same matched bits, same PSNR/SSIM (to float noise)."""
    assert sorted(got) == sorted(expected), f"{what}: the two sides produced different cells"
    for cell, (bits_e, psnr_e, ssim_e) in expected.items():
        bits_g, psnr_g, ssim_g = got[cell]
        assert bits_g == bits_e, f"{what}: {cell}: {bits_g} bits matched, expected {bits_e}"
        for name, e, g in (("psnr", psnr_e, psnr_g), ("ssim", ssim_e, ssim_g)):
            assert (e is None) == (g is None), f"{what}: {cell}: {name} {g} vs {e}"
            if e is not None:
                assert g == pytest.approx(e, rel=1e-9, abs=1e-9) or (math.isinf(e) and g == e), (
                    f"{what}: {cell}: {name} {g} vs {e}")


# -- timing helpers ----------------------------------------------------------------------

class SharedWork:
    """Seconds spent inside the work both sides share: imwatermark's encode/decode, the
    attack functions and PSNR/SSIM. ``wall - shared`` is what each side spends around
    that work; the difference of those between the sides is wmbench's own cost, an
    estimate far less exposed to the machine's noise than the ratio of two wall times
    (the shared work is ~95 % of both and identical by construction).

    Installed with pytest's ``monkeypatch`` (undone after the test) on both sides at
    once, so the few microseconds per wrapped call cost both sides alike.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import imwatermark.dwtDctSvd
        import imwatermark.maxDct

        self.seconds = 0.0
        self.calls: collections.Counter[str] = collections.Counter()
        for cls in (imwatermark.maxDct.EmbedMaxDct, imwatermark.dwtDctSvd.EmbedDwtDctSvd):
            for name in ("encode", "decode"):
                monkeypatch.setattr(cls, name, self._timed(getattr(cls, name), name))
        # Both sides look the metrics up on the module at call time.
        for name in ("psnr", "ssim"):
            monkeypatch.setattr(quality, name, self._timed(getattr(quality, name), name))
        original_get_attack = registry.get_attack
        wrapped: dict[str, Any] = {}

        def get_attack(name: str) -> Any:
            if name not in wrapped:
                spec = original_get_attack(name)
                wrapped[name] = dataclasses.replace(spec, apply=self._timed(spec.apply, "attack"))
            return wrapped[name]

        monkeypatch.setattr(registry, "get_attack", get_attack)

    def _timed(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.calls[label] += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed

    def measure(self, side: Callable[[], Timing]) -> Callable[[], Timing]:
        """Wrap a side so its Timing carries the shared seconds and calls of that run."""
        def run() -> Timing:
            self.seconds = 0.0
            self.calls.clear()
            timing = side()
            return timing._replace(shared=self.seconds, calls=dict(self.calls))
        return run


def interleave(sides: dict[str, Callable[[], Timing]], rounds: int) -> dict[str, list[Timing]]:
    """Run every side once per round, alternating the order (A B, B A, A B, ...) so a
    slow drift of the machine's speed hits both sides alike. Each callable returns
    the Timing of its own timed section (set-up is outside it)."""
    times: dict[str, list[Timing]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(sides[name]())
    return times


@dataclass
class Ratio:
    """num / den from interleaved rounds: min-based (noise only ever adds time, so the
    minimum is the cleanest estimate) and the median of the per-round ratios."""

    num: list[float]
    den: list[float]

    @classmethod
    def of(cls, num: list[Timing], den: list[Timing], field: str = "wall") -> Ratio:
        return cls([getattr(t, field) for t in num], [getattr(t, field) for t in den])

    @property
    def by_min(self) -> float:
        return min(self.num) / min(self.den)

    @property
    def by_median_of_pairs(self) -> float:
        return statistics.median(a / b for a, b in zip(self.num, self.den))

    def info(self, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}_by_min": round(self.by_min, 4),
            f"{prefix}_median_of_rounds": round(self.by_median_of_pairs, 4),
            f"{prefix}_num_seconds": [round(t, 3) for t in self.num],
            f"{prefix}_den_seconds": [round(t, 3) for t in self.den],
        }


def machine_load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# -- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def bench_enabled(request: pytest.FixtureRequest) -> bool:
    """True under ``--benchmark-enable`` (``make bench``): full sizes, goals asserted.

    pyproject's addopts always passes ``--benchmark-disable`` and ``--benchmark-enable``
    is a separate option that wins over it, so ``benchmark_disable`` alone is always
    True here; pytest-benchmark's own rule (its session also disables itself under
    xdist) decides.
    """
    session = getattr(request.config, "_benchmarksession", None)
    if session is not None:
        return not session.disabled
    opt = request.config.getoption
    return not (opt("benchmark_disable", False) and not opt("benchmark_enable", False))


@pytest.fixture(scope="session")
def single_process_threads() -> int:
    """The thread limits ``run_suite(workers=1)`` applies, put in force for the bare
    loop too, so both single-process sides run with the same thread pools."""
    threads = threads_per_worker(1)
    limit_threads(threads)
    return threads


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Callable[[str], Path]:
    """``fresh_dir("bench")`` -> a new, not yet existing run folder under tmp_path."""
    counter = itertools.count()

    def make(prefix: str = "run") -> Path:
        return tmp_path / f"{prefix}-{next(counter)}"

    return make


@pytest.fixture(scope="session")
def warm(single_process_threads: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Import everything and touch every code path once before anything is timed."""
    tiny = Workload("dwtDct", 1, (("jpeg", (50,)),))
    run_bare(tiny)
    run_bench(tiny, tmp_path_factory.mktemp("warm") / "run")


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, for the test modules (a second ``conftest`` module cannot be
    imported by name reliably, so they come as a fixture)."""
    return SimpleNamespace(
        Workload=Workload, Timing=Timing, SharedWork=SharedWork, Ratio=Ratio,
        run_bench=run_bench, run_bare=run_bare, bench_outcomes=bench_outcomes,
        first_result_seconds=first_result_seconds, assert_same_outcomes=assert_same_outcomes,
        interleave=interleave, machine_load=machine_load,
    )
