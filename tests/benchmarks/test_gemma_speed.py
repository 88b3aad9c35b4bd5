"""Gemma 3 270M speed: marked vs unmarked generation, batch 1 vs batched, cold vs cached load.

Goals (issue 9): the green-list logits processor costs under 10 % of the tokens/s of
unmarked generation; a cached load takes seconds where the first one converts the
GGUF file (about a minute). Marked and unmarked runs are interleaved (A B, B A, ...)
and compared by their minimum, as in the other benchmarks: this machine's two
cores are noisy. Goals are asserted only with ``--benchmark-enable`` (``make bench``);
disabled, as in CI, every test runs one short round as a smoke test. Skipped where
the extra ``wmbench[gemma]`` is not installed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wmbench import registry
from wmbench.modalities.text.corpus import prompts
from wmbench.modalities.text.lm import GEMMA, GemmaBackend, gemma_missing, load_lm

MISSING = gemma_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"Gemma is not installed here: {MISSING}")
GOAL_PROCESSOR_COST = 0.10


@pytest.fixture(scope="module")
def gemma(single_process_threads: int) -> GemmaBackend:
    backend = load_lm(GEMMA)
    backend.model  # noqa: B018
    backend.vocab_hashes  # noqa: B018
    return backend


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


@pytest.mark.benchmark(group="gemma-generation")
@pytest.mark.parametrize("name", ["unigram", "kgw"])
def test_marked_vs_unmarked_tokens_per_second(benchmark, bench_enabled: bool, gemma: GemmaBackend,
                                              name: str) -> None:
    """Batch 1: the same prompt and draws with and without the bias; then the twins in
    one batch of 2 and four prompts' twins in one batch of 8."""
    tokens, rounds = (64, 4) if bench_enabled else (8, 1)
    method = registry.method_instance(name, (("lm", GEMMA), ("max_new_tokens", tokens)))
    prompt = prompts()[2]
    bias = method._bias("bench")
    marked, unmarked = [], []
    for r in range(rounds):
        order = [(marked, bias), (unmarked, None)]
        for times, b in order if r % 2 == 0 else reversed(order):
            times.append(_timed(gemma.generate, prompt, tokens, 1, b))
    pair_times: list[float] = []

    def pair() -> tuple[str, str]:
        start = time.perf_counter()
        try:
            return method.embed_pair(prompt, "bench")
        finally:
            pair_times.append(time.perf_counter() - start)

    marked_text, unmarked_text = benchmark.pedantic(pair, rounds=2 if bench_enabled else 1, iterations=1)
    assert marked_text != unmarked_text
    if bench_enabled:
        assert method.detect(marked_text, "bench").p_value < 0.01
    pair_seconds = min(pair_times)
    cost = min(marked) / min(unmarked) - 1
    rates = {"marked_batch1": tokens / min(marked), "unmarked_batch1": tokens / min(unmarked),
             "pair_batch2": 2 * tokens / pair_seconds}
    if bench_enabled:
        rates["four_pairs_batch8"] = 8 * tokens / _timed(method.embed_pairs, prompts()[:4], "bench")
    benchmark.extra_info.update({f"{k}_tokens_per_second": round(v, 2) for k, v in rates.items()},
                                processor_cost=round(cost, 4))
    print(f"\n{name} on Gemma, {tokens} tokens: " + ", ".join(f"{k} {v:.1f} tok/s" for k, v in rates.items())
          + f"; logits processor {cost:+.1%}")
    if bench_enabled:
        assert cost < GOAL_PROCESSOR_COST, (marked, unmarked)


@pytest.mark.benchmark(group="gemma-load")
def test_cold_conversion_vs_cached_load(benchmark, bench_enabled: bool, tmp_path: Path,
                                        gemma: GemmaBackend) -> None:
    """Cold: convert the GGUF file into an empty cache (only under --benchmark-enable:
    about a minute). Cached: a new backend on the machine's cache, weights loaded."""
    def cached() -> None:
        GemmaBackend().model  # noqa: B018

    start = time.perf_counter()
    benchmark.pedantic(cached, rounds=1, iterations=1)
    warm = time.perf_counter() - start
    benchmark.extra_info["cached_load_seconds"] = round(warm, 2)
    if not bench_enabled:
        return
    cold_backend = GemmaBackend(cache_dir=tmp_path / "cache")
    cold = _timed(lambda: (cold_backend.tokenizer, cold_backend.model))
    second = _timed(lambda: GemmaBackend(cache_dir=tmp_path / "cache").model)
    benchmark.extra_info.update(cold_load_seconds=round(cold, 2), second_load_seconds=round(second, 2))
    print(f"\nGemma load: cold (convert GGUF) {cold:.1f} s, cached {second:.1f} s (machine cache {warm:.1f} s)")
    assert second < cold / 3
