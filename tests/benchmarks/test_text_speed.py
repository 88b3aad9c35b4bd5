"""Text speed: green-list detection throughput and n-gram generation rate.

Goal (issue 4): detection >= 5 M tokens/s on one core for ``unigram`` and ``kgw``.
Detection is timed from token hashes (what the statistic runs on); turning a string
into hashes is timed separately, since it is per distinct word, not per token.
Rates are asserted only with ``--benchmark-enable``; disabled (as in CI), each test
runs once as a correctness smoke test.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from wmbench import registry
from wmbench.modalities.text.corpus import prompts
from wmbench.modalities.text.green import count_green, key_hash, token_hashes

TOKENS = 2_000_000
GOAL_TOKENS_PER_SECOND = 5e6


@pytest.fixture(scope="module")
def hashed_text() -> np.ndarray:
    """Two million tokens over a 20k-word vocabulary with Zipf-like frequencies."""
    rng = np.random.default_rng(0)
    ranks = np.minimum(rng.zipf(1.3, TOKENS), 20_000)
    return token_hashes([f"w{r}" for r in range(20_001)])[ranks]


@pytest.mark.benchmark(group="text-detection")
@pytest.mark.parametrize("name,width", [("unigram", 0), ("kgw", 1)])
def test_detection_throughput(benchmark, bench_enabled: bool, hashed_text: np.ndarray, name: str, width: int) -> None:
    key = key_hash("bench")
    count = benchmark.pedantic(count_green, args=(hashed_text, key, 0.25, width), rounds=5, iterations=1)
    assert 0 < count.tokens_scored <= TOKENS and abs(count.z) < 6  # unmarked text
    if bench_enabled:
        rate = TOKENS / benchmark.stats.stats.min
        benchmark.extra_info["tokens_per_second"] = rate
        print(f"\n{name} detection: {rate / 1e6:.1f} M tokens/s (goal {GOAL_TOKENS_PER_SECOND / 1e6:.0f} M)")
        assert rate >= GOAL_TOKENS_PER_SECOND


@pytest.mark.benchmark(group="text-generation")
@pytest.mark.parametrize("name", ["unigram", "kgw"])
def test_generation_rate_marked_vs_unmarked(benchmark, bench_enabled: bool, name: str) -> None:
    """Tokens/s of marked generation, and its cost against unmarked generation."""
    method = registry.method_instance(name, (("max_new_tokens", 200),))
    prompt = prompts()[0]
    text = benchmark.pedantic(method.embed, args=(prompt, "bench"), rounds=3, iterations=1)
    assert method.detect(text, "bench").p_value < 1e-6
    if bench_enabled:
        start = time.perf_counter()
        for _ in range(3):
            method.unmarked(prompt, "bench")
        unmarked = (time.perf_counter() - start) / 3
        marked = benchmark.stats.stats.min
        benchmark.extra_info.update(marked_tokens_per_second=200 / marked,
                                    unmarked_tokens_per_second=200 / unmarked)
        print(f"\n{name} generation: {200 / marked:,.0f} tokens/s marked, {200 / unmarked:,.0f} unmarked")
