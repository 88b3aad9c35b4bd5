"""Attacks that use a language model: the emoji attack and LM span regeneration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testkit import read_cells
from wmbench import registry
from wmbench.api import Filler
from wmbench.modalities.text.corpus import human_texts, prompts
from wmbench_attacks.text_generation import EMOJI, emoji, lm_regenerate

ALPHA = 0.01


@pytest.fixture(scope="module")
def kgw():
    return registry.method_instance("kgw", (("max_new_tokens", 200),))


@pytest.fixture(scope="module")
def unigram():
    return registry.method_instance("unigram", (("max_new_tokens", 200),))


def _emoji_attacked(method, prompt: str, rate: float, marked: bool = True) -> str:
    make = method.embed if marked else method.unmarked
    return emoji(make(prompt, "k", filler=Filler(EMOJI, rate, seed=3)), rate, np.random.default_rng(0))


def test_filler_is_written_and_stripped(kgw) -> None:
    raw = kgw.embed(prompts()[0], "k", filler=Filler(EMOJI, 1.0, seed=3))
    assert raw.count(EMOJI) >= 150
    assert EMOJI not in emoji(raw, 1.0, np.random.default_rng(0))
    assert kgw.embed(prompts()[0], "k", filler=Filler(EMOJI, 1.0, seed=3)) == raw  # deterministic


def test_emoji_attack_breaks_kgw_but_not_unigram(kgw, unigram) -> None:
    """Kirchenbauer et al.'s emoji attack: a context-keyed green list is re-drawn on a
    context the detector never sees; a fixed (unigram) list does not care."""
    kgw_p = [kgw.detect(_emoji_attacked(kgw, p, 1.0), "k").p_value for p in prompts()[:8]]
    uni_p = [unigram.detect(_emoji_attacked(unigram, p, 1.0), "k").p_value for p in prompts()[:8]]
    assert sum(p < ALPHA for p in kgw_p) <= 1, kgw_p
    assert all(p < 1e-6 for p in uni_p), uni_p
    half = [kgw.detect(_emoji_attacked(kgw, p, 0.5), "k").p_value for p in prompts()[:8]]
    assert np.median(half) < np.median(kgw_p)  # strengths are ordered: fewer emoji, more mark left


def test_emoji_on_unmarked_twins_raises_no_false_alarm(kgw) -> None:
    p_values = [kgw.detect(_emoji_attacked(kgw, p, 1.0, marked=False), "k").p_value for p in prompts()[:12]]
    assert sum(p < ALPHA for p in p_values) <= 1


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.25, 0.5, 1.0]))
def test_lm_regenerate_is_deterministic_and_keeps_length(seed: int, strength: float) -> None:
    text = next(iter(human_texts().values()))
    a = lm_regenerate(text, strength, np.random.default_rng(seed))
    b = lm_regenerate(text, strength, np.random.default_rng(seed))
    assert a == b and a != text
    assert 0.7 < len(a.split()) / len(text.split()) < 1.3


def test_lm_regenerate_erases_kgw_as_its_strength_grows(kgw) -> None:
    marked = [kgw.embed(p, "k") for p in prompts()[:8]]
    medians = [np.median([kgw.detect(lm_regenerate(t, s, np.random.default_rng(i)), "k").score  # z-score
                          for i, t in enumerate(marked)]) for s in (0.25, 0.5, 1.0)]
    assert medians[0] > medians[1] > medians[2]
    assert medians[2] < 2.33  # fully regenerated: no evidence left at the 1 % level
    assert lm_regenerate(marked[0], 0.0, np.random.default_rng(0)) == marked[0]


def test_lm_regenerate_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="fraction"):
        lm_regenerate("a b c", 1.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="span"):
        lm_regenerate("a b c", 0.5, np.random.default_rng(0), span=0)
    assert lm_regenerate("", 1.0, np.random.default_rng(0)) == ""


@pytest.mark.slow
def test_emoji_in_a_suite_runs_for_generation_marks_and_skips_lexical(tmp_path, cli) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text('[samples]\ntexts = ["builtin:texts"]\nprompts = ["builtin:prompts"]\n'
                     '[text]\nmax_new_tokens = 150\n'
                     '[[methods]]\nname = "kgw"\nmax_samples = 2\n[[methods]]\nname = "lexical"\nmax_samples = 2\n'
                     '[[attacks]]\nname = "emoji"\nstrengths = [1.0]\n', encoding="utf-8")
    code, _, err = cli("run", suite, "--out", tmp_path / "run", "--workers", "1", "--no-progress")
    assert code == 0, err
    cells = [c for c in read_cells(tmp_path / "run").values() if c["attack"] == "emoji"]
    kgw_cells = [c for c in cells if c["method"] == "kgw"]
    lexical_cells = [c for c in cells if c["method"] == "lexical"]
    assert kgw_cells and all(c["error"] is None and c["skipped"] is None for c in kgw_cells)
    assert all(c["p_value"] > ALPHA for c in kgw_cells if c["marked"])  # erased
    assert not lexical_cells  # nothing generated, nothing to attack: not planned
    negatives = {c["sample"] for c in read_cells(tmp_path / "run").values() if c["method"] == "kgw"
                 and not c["marked"] and c["attack"] == "none"}
    assert {c["sample"] for c in kgw_cells} < negatives  # human texts under kgw get no emoji cell
    # The attacker's text has no original: similarity is not measured (never the text against
    # itself, 1 by construction), and the cell says why; fluency (perplexity) is measured.
    for c in kgw_cells:
        extra = json.loads(c["extra"])
        assert c["similarity"] is None and "no original to compare with" in extra["similarity_missing"], c
        assert c["perplexity"] is not None and c["perplexity"] > 1
