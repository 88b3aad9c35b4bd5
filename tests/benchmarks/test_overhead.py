"""Goal 1: wmbench costs at most 5 % more than a bare imwatermark loop doing the same work.
Goal 3 (nice-to-have): one embed per sample; every extra cell costs attack + detect only.

``make bench`` (``--benchmark-enable``) times full-size workloads and asserts the goals;
the default ``--benchmark-disable`` runs one small round of each as a correctness smoke
test (same cells, same matched bits, same PSNR/SSIM on both sides). The bare loop and
the bench side are defined in ``conftest.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wmbench import registry
from wmbench.modalities.image.io import load_image

METHODS = ("dwtDctSvd", "dwtDct")
OVERHEAD_GOAL = 0.05  # bench_time / bare_time - 1
WALL_NOISE = 0.05  # round-to-round noise of one wall time on these 2-core VMs
RATIO_ROUNDS = 7  # interleaved rounds per side for the goal tests (round-to-round noise is ~5 %)
SIDE_ROUNDS = 3  # pytest-benchmark rounds of the one-side benchmarks

# 2 photos (astronaut 512x512, coffee 400x600), 4 attacks x 4 strengths: 68 cells,
# about 5-10 s per side. The attacks keep the image size, so every cell has PSNR/SSIM.
FULL_ATTACKS = (
    ("jpeg", (90, 70, 50, 30)),
    ("gaussian_blur", (0.5, 1, 2, 4)),
    ("gaussian_noise", (2, 5, 10, 20)),  # random: checks both sides use the same seeds
    ("crop_center_resize", (0.9, 0.75, 0.6, 0.5)),
)
SMOKE_ATTACKS = (("jpeg", (90, 50)), ("gaussian_noise", (5,)))


def overhead_workload(kit: Any, method: str, enabled: bool, *, side_only: bool = False) -> Any:
    if enabled:
        return kit.Workload(method, 2, FULL_ATTACKS)
    return kit.Workload(method, 1, SMOKE_ATTACKS[:1] if side_only else SMOKE_ATTACKS)


def report(benchmark: Any, title: str, info: dict[str, Any]) -> None:
    benchmark.extra_info.update(info)
    print(f"\n[{title}] " + ", ".join(f"{k}={v}" for k, v in info.items()))


# -- one side at a time (pytest-benchmark statistics) -------------------------------------

@pytest.mark.benchmark(group="overhead")
@pytest.mark.parametrize("method", METHODS)
def test_bare_imwatermark_loop(benchmark: Any, kit: Any, bench_enabled: bool, method: str,
                               single_process_threads: int, request: pytest.FixtureRequest) -> None:
    if bench_enabled:
        request.getfixturevalue("warm")
    benchmark.group = f"overhead-{method}"
    workload = overhead_workload(kit, method, bench_enabled, side_only=True)
    benchmark.extra_info.update(workload=workload.describe(), threads=single_process_threads)
    _, outcomes = benchmark.pedantic(kit.run_bare, args=(workload,), rounds=SIDE_ROUNDS, iterations=1)
    assert len(outcomes) == workload.cells


@pytest.mark.benchmark(group="overhead")
@pytest.mark.parametrize("method", METHODS)
def test_wmbench_run_suite(benchmark: Any, kit: Any, bench_enabled: bool, method: str,
                           fresh_dir: Callable[[str], Path], request: pytest.FixtureRequest) -> None:
    if bench_enabled:
        request.getfixturevalue("warm")
    benchmark.group = f"overhead-{method}"
    workload = overhead_workload(kit, method, bench_enabled, side_only=True)
    benchmark.extra_info.update(workload=workload.describe())
    # setup gives every round a fresh run folder (run_suite refuses a used one).
    _, summary = benchmark.pedantic(
        kit.run_bench, setup=lambda: ((workload, fresh_dir("bench")), {}), rounds=SIDE_ROUNDS, iterations=1,
    )
    assert summary.new_cells == workload.cells and summary.failed_cells == 0, summary.errors


# -- goal 1: the ratio, interleaved --------------------------------------------------------

@pytest.mark.benchmark(group="overhead")
@pytest.mark.parametrize("method", METHODS)
def test_overhead_vs_bare_imwatermark(benchmark: Any, kit: Any, bench_enabled: bool, method: str,
                                      single_process_threads: int, fresh_dir: Callable[[str], Path],
                                      request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """overhead = bench_time / bare_time - 1, both single-process with the same thread
    limits, timed in interleaved rounds; goal <= 5 %.

    Reported three ways: the wall-time ratio (min over rounds, and median of the
    per-round ratios), the CPU-time ratio, and wmbench's own seconds outside the work
    both sides share (see ``SharedWork``) over the bare time. Single wall times vary by
    ~5 % round to round here, as much as the goal, so the goal is asserted on the
    last estimate and the wall ratio only has to agree within that noise.
    """
    if bench_enabled:
        request.getfixturevalue("warm")
    benchmark.group = f"overhead-{method}"
    workload = overhead_workload(kit, method, bench_enabled)
    rounds = RATIO_ROUNDS if bench_enabled else 1
    last: dict[str, Any] = {}

    def bare() -> Any:
        timing, last["bare"] = kit.run_bare(workload)
        return timing

    def bench() -> Any:
        last["bench_dir"] = fresh_dir("bench")
        timing, summary = kit.run_bench(workload, last["bench_dir"], workers=1)
        assert summary.failed_cells == 0, summary.errors
        return timing

    shared = kit.SharedWork(monkeypatch)
    sides = {"bench": shared.measure(bench), "bare": shared.measure(bare)}
    times = benchmark.pedantic(kit.interleave, args=(sides, rounds), rounds=1, iterations=1)

    # Correctness first, in every mode: the same cells with the same outcomes, from the
    # same amount of shared work (one embed per photo, one decode per cell).
    assert len(last["bare"]) == workload.cells
    kit.assert_same_outcomes(last["bare"], kit.bench_outcomes(last["bench_dir"]), f"{method} bench vs bare")
    for side in ("bench", "bare"):
        calls = times[side][-1].calls
        assert calls["encode"] == workload.samples, (side, calls)
        assert calls["decode"] == calls["ssim"] == calls["psnr"] == workload.cells, (side, calls)
        assert calls["attack"] == workload.cells - 2 * workload.samples, (side, calls)

    ratio = kit.Ratio.of(times["bench"], times["bare"])
    cpu = kit.Ratio.of(times["bench"], times["bare"], "cpu")
    overhead = ratio.by_min - 1
    outside = {side: [t.wall - t.shared for t in times[side]] for side in times}
    own_cost = min(outside["bench"]) - min(outside["bare"])
    report(benchmark, f"overhead {method}" + ("" if bench_enabled else " SMOKE, not a measurement"), {
        "workload": workload.describe(), "threads": single_process_threads, "rounds": rounds,
        "overhead_by_min": f"{overhead:+.2%}", "overhead_median_of_rounds": f"{ratio.by_median_of_pairs - 1:+.2%}",
        "overhead_outside_shared_work": f"{own_cost / min(ratio.den):+.2%}",
        "bench_own_seconds": round(own_cost, 3),
        "shared_work_seconds": {side: [round(t.shared, 3) for t in times[side]] for side in times},
        "cpu_overhead_by_min": f"{cpu.by_min - 1:+.2%}", "cpu_overhead_median_of_rounds": f"{cpu.by_median_of_pairs - 1:+.2%}",
        **ratio.info("wall_bench_over_bare"), **cpu.info("cpu_bench_over_bare"), "load_avg": kit.machine_load(),
    })
    if bench_enabled:
        # The goal is judged on the estimate that survives this machine's noise:
        # wmbench's own seconds (outside the shared work) over the bare loop's time.
        # The plain wall ratio must agree within the round-to-round noise, which
        # catches a cost the estimate cannot see (e.g. the bench slowing the shared
        # work itself through its thread settings).
        assert own_cost / min(ratio.den) <= OVERHEAD_GOAL, (
            f"wmbench spends {own_cost:.3f} s of its own per run = {own_cost / min(ratio.den):+.1%} of the "
            f"bare loop's {min(ratio.den):.3f} s (goal {OVERHEAD_GOAL:.0%}); wall ratio says {overhead:+.1%}")
        assert overhead <= OVERHEAD_GOAL + WALL_NOISE, (
            f"wmbench is {overhead:+.1%} slower than a bare imwatermark loop by wall time "
            f"(bench {min(ratio.num):.3f} s vs bare {min(ratio.den):.3f} s; CPU time says {cpu.by_min - 1:+.1%}; "
            f"outside the shared work: {own_cost:.3f} s = {own_cost / min(ratio.den):+.1%})")


# -- goal 3: embed once --------------------------------------------------------------------

def _embed_seconds(method: str, workload: Any, repeats: int = 3) -> float:
    """Mean over the workload's photos of the fastest of ``repeats`` embeds."""
    adapter = registry.method_instance(method)
    per_sample = []
    for sample in workload.sample_files():
        image = load_image(sample.source)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            adapter.embed(image, workload.key)
            best = min(best, time.perf_counter() - t0)
        per_sample.append(best)
    return float(np.mean(per_sample))


@pytest.mark.benchmark(group="embed-once")
@pytest.mark.parametrize("method", METHODS)
def test_embed_once(benchmark: Any, kit: Any, bench_enabled: bool, method: str,
                    single_process_threads: int, fresh_dir: Callable[[str], Path],
                    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep of N strengths costs one embed plus N x (attack + detect + quality).

    Counted exactly, in every mode: imwatermark's encoder runs once per photo whatever
    the number of strengths, its decoder once per cell. Timed with benchmarks enabled:
    the same attack with 1 strength and with N strengths (and the bare loop likewise);
    the difference divided by the extra cells is the cost of one more cell, reported
    relative to one embed and to the bare loop's cost of that cell.
    """
    if bench_enabled:
        request.getfixturevalue("warm")
    benchmark.group = f"embed-once-{method}"
    samples, strengths, rounds = (2, (95, 90, 85, 80, 75, 70, 65, 60, 55, 50), 4) if bench_enabled else (1, (90, 50), 1)
    one = kit.Workload(method, samples, (("jpeg", strengths[-1:]),))
    many = kit.Workload(method, samples, (("jpeg", strengths),))
    extra_cells = many.cells - one.cells
    bench_dirs: dict[str, Path] = {}

    def bench_side(workload: Any, name: str) -> Callable[[], Any]:
        def run() -> Any:
            bench_dirs[name] = fresh_dir(name)
            return kit.run_bench(workload, bench_dirs[name])[0]
        return run

    shared = kit.SharedWork(monkeypatch)
    sides = {
        "bench_one": bench_side(one, "one"), "bench_many": bench_side(many, "many"),
        "bare_one": lambda: kit.run_bare(one)[0], "bare_many": lambda: kit.run_bare(many)[0],
    }
    sides = {name: shared.measure(side) for name, side in sides.items()}
    times = benchmark.pedantic(kit.interleave, args=(sides, rounds), rounds=1, iterations=1)
    for name, workload in (("one", one), ("many", many)):
        assert len(kit.bench_outcomes(bench_dirs[name])) == workload.cells
        for side in ("bench", "bare"):
            calls = times[f"{side}_{name}"][-1].calls
            assert calls["encode"] == samples, f"{side}, {len(workload.attacks[0][1])} strength(s): {calls}"
            assert calls["decode"] == workload.cells, f"{side}, {len(workload.attacks[0][1])} strength(s): {calls}"

    embed = _embed_seconds(method, one, repeats=3 if bench_enabled else 1)
    best = {name: min(t.wall for t in ts) for name, ts in times.items()}
    bench_cell = (best["bench_many"] - best["bench_one"]) / extra_cells
    bare_cell = (best["bare_many"] - best["bare_one"]) / extra_cells
    report(benchmark, f"embed-once {method}" + ("" if bench_enabled else " SMOKE, not a measurement"), {
        "samples": samples, "strengths_one": 1, "strengths_many": len(strengths), "extra_cells": extra_cells,
        "embed_seconds": round(embed, 4),
        "extra_cell_seconds_bench": round(bench_cell, 4), "extra_cell_seconds_bare": round(bare_cell, 4),
        "extra_cell_over_embed": round(bench_cell / embed, 3),
        "extra_cell_overhead_vs_bare": f"{bench_cell / bare_cell - 1:+.2%}",
        "sweep_fixed_seconds_bench": round(best["bench_one"] - 2 * samples * bench_cell, 4),
        "sweep_fixed_seconds_bare": round(best["bare_one"] - 2 * samples * bare_cell, 4),
        "seconds": {k: [round(t.wall, 3) for t in v] for k, v in times.items()}, "load_avg": kit.machine_load(),
    })
    # No timing assertion here: the call counts above prove the embed is reused, and
    # the per-cell timings are a report (a difference of two noisy minima).
