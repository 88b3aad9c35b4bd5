"""Text marks on the built-in texts: detection of marked text, calibrated false alarms.

Calibration is checked the way a reader of the report would: over many keys and
texts, the fraction of unmarked items called "detected" at alpha must not exceed
what Binomial(n, alpha) allows (one-sided, 0.1 % level), and marked items must be
detected.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from wmbench import registry
from wmbench.modalities.text.corpus import human_texts, prompts
from wmbench.modalities.text.green import count_green, green_score, key_hash, token_hashes
from wmbench.modalities.text.tokenize import token_forms

ALPHA = 0.01


def _false_alarm_bound(n: int) -> int:
    """Largest count of false alarms in n honest trials that is not significant at 0.1 %."""
    return int(stats.binom.ppf(0.999, n, ALPHA))


@pytest.fixture(scope="module")
def generations() -> dict[str, tuple[list[str], list[str]]]:
    """Marked and unmarked generations of every built-in prompt, per generation mark."""
    out = {}
    for name in ("unigram", "kgw"):
        method = registry.method_instance(name, (("max_new_tokens", 120),))
        marked = [method.embed(p, "test-key") for p in prompts()]
        unmarked = [method.unmarked(p, "test-key") for p in prompts()]
        out[name] = (marked, unmarked)
    return out


@pytest.mark.parametrize("name", ["unigram", "kgw"])
def test_generation_marks_are_detected_on_every_prompt(name: str, generations: dict) -> None:
    method = registry.method_instance(name, (("max_new_tokens", 120),))
    marked, _ = generations[name]
    p_values = [method.detect(text, "test-key").p_value for text in marked]
    assert len(p_values) >= 20
    assert max(p_values) < ALPHA, p_values


@pytest.mark.parametrize("name", ["unigram", "kgw"])
def test_generation_marks_raise_no_false_alarms_over_many_keys(name: str, generations: dict) -> None:
    method = registry.method_instance(name, (("max_new_tokens", 120),))
    marked, unmarked = generations[name]
    keys = [f"other-{i}" for i in range(40)]
    # unmarked generations with the right key, and marked ones with wrong keys
    trials = [method.detect(t, "test-key").p_value for t in unmarked]
    trials += [method.detect(t, k).p_value for t in marked[:6] for k in keys]
    alarms = sum(p < ALPHA for p in trials)
    assert alarms <= _false_alarm_bound(len(trials)), (alarms, len(trials))


def test_human_texts_raise_no_false_alarms_under_any_mark() -> None:
    texts = list(human_texts().values())
    trials = []
    for name in ("unigram", "kgw", "lexical"):
        method = registry.method_instance(name)
        trials += [method.detect(t, f"key-{i}").p_value for t in texts for i in range(10)]
    assert len(trials) == 30 * len(texts)
    assert sum(p < ALPHA for p in trials) <= _false_alarm_bound(len(trials))


def test_lexical_marks_most_human_texts_and_reports_substitutable_words() -> None:
    method = registry.method_instance("lexical")
    texts = list(human_texts().values())
    detections = [method.detect(method.embed(t, "test-key"), "test-key") for t in texts]
    detected = sum(d.p_value < ALPHA for d in detections)
    assert detected >= 0.75 * len(texts), [round(d.p_value, 4) for d in detections]
    for d in detections:
        assert 0 < d.extra["substitutable"] < d.extra["words"]


def test_lexical_keeps_text_outside_substituted_words() -> None:
    method = registry.method_instance("lexical")
    text = next(iter(human_texts().values()))
    marked = method.embed(text, "test-key")
    assert marked != text
    assert len(token_forms(marked)) == len(token_forms(text))  # one word for one word
    assert marked.count("\n") == text.count("\n")


def test_repetition_cannot_inflate_the_score() -> None:
    method = registry.method_instance("kgw", (("max_new_tokens", 120),))
    marked = method.embed(prompts()[0], "test-key")
    once = method.detect(marked, "test-key")
    ten_times = method.detect(" ".join([marked] * 10), "test-key")
    # only the few (context, token) pairs at the joins are new
    assert ten_times.extra["tokens_scored"] <= once.extra["tokens_scored"] + 10
    assert abs(ten_times.score - once.score) < 1.0


@pytest.mark.parametrize("name", ["unigram", "kgw", "lexical"])
@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_text_too_short_scores_p_one_with_a_reason(name: str, text: str) -> None:
    d = registry.method_instance(name).detect(text, "k")
    assert d.p_value == 1.0 and d.extra["tokens_scored"] == 0 and "too short" in d.extra["reason"]


def test_generation_is_deterministic_and_shares_draws_with_its_unmarked_twin() -> None:
    method = registry.method_instance("kgw", (("max_new_tokens", 60),))
    prompt = prompts()[1]
    assert method.embed(prompt, "k") == method.embed(prompt, "k")
    assert method.unmarked(prompt, "k") == method.unmarked(prompt, "other key")  # no key, no mark


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.integers(0, 30), min_size=0, max_size=200),
    width=st.integers(0, 2),
    gamma=st.sampled_from([0.1, 0.25, 0.5]),
)
def test_count_green_matches_a_direct_count_of_distinct_pairs(ids: list[int], width: int, gamma: float) -> None:
    words = [f"w{i}" for i in ids]
    hashes = token_hashes(words)
    key = key_hash("prop")
    count = count_green(hashes, key, gamma, width)
    # direct: the context of a token is the tuple of up to `width` previous words
    seen: dict[tuple, bool] = {}
    from wmbench.modalities.text.green import context_hashes

    contexts = context_hashes(hashes, width)
    for i, word in enumerate(words):
        pair = (tuple(words[max(0, i - width):i]), word)
        seen.setdefault(pair, bool(green_score(contexts[i:i + 1], hashes[i:i + 1], key)[0] < gamma))
    assert count.tokens_scored == len(seen)
    assert count.green == sum(seen.values())
    if count.tokens_scored:
        expected = stats.binomtest(count.green, count.tokens_scored, gamma, alternative="greater").pvalue
        assert count.p_value == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_green_lists_have_the_requested_size() -> None:
    vocab = token_hashes([f"word{i}" for i in range(20000)])
    for gamma in (0.1, 0.25, 0.5):
        share = float(np.mean(green_score(np.zeros(len(vocab), np.uint64), vocab, key_hash("k")) < gamma))
        assert abs(share - gamma) < 0.015
