"""Gemma 3 270M, the real model behind ``lm = "gemma3-270m"`` (the extra ``wmbench[gemma]``).

The model tests are skipped, with the reason, where the extra is not installed; CI
installs it (``make test``). The first of them on a machine converts the package's
GGUF file (about a minute, once: the result is cached under ``~/.cache/wmbench`` or
``$WMBENCH_CACHE``); the others reuse the model loaded in this process. The tests of
the missing-extra path simulate the absence and run everywhere.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest
from testkit import assert_one_line_error

from wmbench import registry
from wmbench.api import Filler, SkipCell
from wmbench.errors import SuiteError
from wmbench.suite import load_suite, parse_suite
from wmbench.modalities.text.corpus import human_texts, prompts
from wmbench.modalities.text.lm import GEMMA, GEMMA_PACKAGE, GemmaBackend, gemma_missing, load_lm

MISSING = gemma_missing()
needs_gemma = pytest.mark.skipif(MISSING is not None, reason=f"Gemma is not installed here: {MISSING}")
SUITE = '[samples]\nprompts = ["builtin:prompts"]\n[text]\nlm = "{lm}"\n[[methods]]\nname = "kgw"\n'


@pytest.fixture(scope="module")
def gemma() -> GemmaBackend:
    backend = load_lm(GEMMA)
    backend.model  # noqa: B018  (converts the GGUF file the first time on a machine)
    return backend


def _method(name: str, tokens: int = 30):
    return registry.method_instance(name, (("lm", GEMMA), ("max_new_tokens", tokens)))


@pytest.fixture(scope="module")
def kgw_pairs(gemma: GemmaBackend) -> list[tuple[str, str]]:
    """(marked, unmarked) of 30 tokens for three prompts: six rows in one batch."""
    return _method("kgw", 30).embed_pairs(prompts()[:3], "k")


@needs_gemma
def test_kgw_on_gemma_detects_30_token_texts_far_below_their_unmarked_twins(
        kgw_pairs: list[tuple[str, str]]) -> None:
    """30 tokens per prompt is a short text for kgw (one prompt alone can stay near
    p = 0.1), so the three texts are detected together, as one document each side."""
    method = _method("kgw", 30)
    marked = method.detect(" ".join(m for m, _ in kgw_pairs), "k")
    unmarked = method.detect(" ".join(u for _, u in kgw_pairs), "k")
    assert marked.extra["tokens_scored"] >= 75, marked  # re-tokenising finds about the 90 tokens written
    assert marked.p_value < 1e-6, marked
    assert unmarked.p_value > 0.01, unmarked
    assert marked.p_value < 1e-4 * unmarked.p_value
    assert method.detect(" ".join(m for m, _ in kgw_pairs), "another key").p_value > 0.01
    hits = [method.detect(m, "k").p_value for m, _ in kgw_pairs]
    misses = [method.detect(u, "k").p_value for _, u in kgw_pairs]
    assert sorted(hits)[1] < 0.01 and min(misses) > 0.01, (hits, misses)


@needs_gemma
def test_a_batch_samples_the_tokens_each_row_samples_alone(kgw_pairs: list[tuple[str, str]]) -> None:
    """Six rows (three prompts of different lengths, marked and unmarked) in one batch
    give the very texts of batch-1 generations: padding is masked, each row keeps its
    generator, and Gumbel-max sampling leaves float rounding no say but a near tie."""
    method = _method("kgw", 30)
    for prompt, (marked, unmarked) in zip(prompts()[:2], kgw_pairs):
        assert marked == method.embed(prompt, "k")
        assert unmarked == method.unmarked(prompt, "k")
        assert marked != unmarked


@needs_gemma
def test_unigram_on_gemma_is_detected(gemma: GemmaBackend) -> None:
    method = _method("unigram", 30)
    pairs = method.embed_pairs(prompts()[:3], "k")
    assert method.detect(" ".join(m for m, _ in pairs), "k").p_value < 1e-6
    assert method.detect(" ".join(u for _, u in pairs), "k").p_value > 0.01


@needs_gemma
def test_detection_loads_the_tokenizer_only(gemma: GemmaBackend) -> None:
    fresh = GemmaBackend()
    assert fresh.scoring_tokens("The harbour was quiet before dawn.")[:2] == ["The", "\u2581harbour"]
    assert "model" not in fresh.__dict__  # the weights were never loaded


@needs_gemma
@pytest.mark.slow
def test_a_second_load_comes_from_the_cache_in_seconds(gemma: GemmaBackend) -> None:
    fresh = GemmaBackend()
    start = time.perf_counter()
    fresh.model  # noqa: B018
    seconds = time.perf_counter() - start
    assert fresh.load_info["from_cache"] is True
    assert seconds < 30, seconds  # converting the GGUF file takes about a minute
    assert (fresh.folder / "wmbench-conversion.json").is_file()
    assert np.array_equal(fresh.vocab_hashes, gemma.vocab_hashes)


@needs_gemma
def test_special_and_image_tokens_are_never_sampled(gemma: GemmaBackend) -> None:
    banned = set(gemma._banned.tolist())
    assert len(gemma.vocab_hashes) == 262_144
    assert {gemma.tokenizer.bos_token_id, gemma.tokenizer.eos_token_id, gemma.tokenizer.pad_token_id} <= banned
    names = gemma.tokenizer.convert_ids_to_tokens(sorted(banned))
    assert "<start_of_image>" in names and "<unused0>" in names
    assert gemma.tokenizer.convert_tokens_to_ids("\u2581the") not in banned


@needs_gemma
def test_emoji_filler_runs_on_gemma_and_the_attack_removes_it(gemma: GemmaBackend) -> None:
    method = _method("kgw", 20)
    filler = Filler("\U0001F642", rate=1.0, seed=3)
    ((marked, unmarked),) = method.embed_pairs([prompts()[0]], "k", [filler])
    assert marked.count("\U0001F642") >= 20 and unmarked.count("\U0001F642") >= 20  # after every token
    cleaned = registry.get_attack("emoji")(marked, 1.0, np.random.default_rng(0))
    assert "\U0001F642" not in cleaned


@needs_gemma
def test_fewshot_paraphrase_rewrites_each_sentence_with_gemma(gemma: GemmaBackend) -> None:
    text = "The harbour was quiet before dawn. Two fishing boats were tied to the old stone wall."
    attack = registry.get_attack("fewshot_paraphrase")
    out = attack(text, 1.0, np.random.default_rng(0))
    assert out.strip() and out != text
    assert attack(text, 1.0, np.random.default_rng(0)) == out  # the cell's rng decides everything
    assert attack(text, 0.0, np.random.default_rng(0)) == text


@needs_gemma
def test_perplexity_of_a_prefix_comes_from_the_scored_text(gemma: GemmaBackend) -> None:
    text = next(iter(human_texts().values()))
    assert 3 < gemma.perplexity(text) < 200
    prefix = " ".join(text.split()[:40])
    start = time.perf_counter()
    cached = gemma.perplexity(prefix)
    assert time.perf_counter() - start < 1.0  # no model pass: the losses of the text's first tokens
    gemma._losses.clear()
    assert gemma.perplexity(prefix) == pytest.approx(cached, rel=1e-4)


@needs_gemma
def test_the_built_in_suite_resolves_by_name() -> None:
    suite = load_suite("real-lm")
    assert suite.path == "builtin:real-lm" and suite.settings["text"]["lm"] == GEMMA
    assert suite.settings["text"]["perplexity"] == "unattacked"
    assert {m.name for m in suite.methods} == {"kgw", "unigram"}


def test_an_unknown_suite_name_lists_the_built_in_ones() -> None:
    with pytest.raises(SuiteError, match="built-in suites: .*real-lm"):
        load_suite("no-such-suite")


@pytest.fixture
def without_gemma(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the extra were not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == GEMMA_PACKAGE else real(name, *a, **k))


@pytest.mark.parametrize("value", ["gemma3-270m", "gemma"])
def test_without_the_extra_the_suite_error_names_the_install_command(tmp_path: Path, without_gemma: None,
                                                                     value: str) -> None:
    with pytest.raises(SuiteError) as info:
        parse_suite(SUITE.format(lm=value), "s.toml", tmp_path)
    message = str(info.value)
    assert message.startswith("s.toml: text.lm: ") and "\n" not in message
    assert 'pip install "wmbench[gemma]"' in message


def test_without_the_extra_the_cli_exits_2_with_one_line(tmp_path: Path, without_gemma: None, cli) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.format(lm="gemma3-270m"), encoding="utf-8")
    code, _, err = cli("run", suite, "--out", tmp_path / "run")
    assert_one_line_error(code, err, "text.lm", 'pip install "wmbench[gemma]"')


def test_without_the_extra_fewshot_paraphrase_cells_are_skipped(without_gemma: None) -> None:
    attack = registry.get_attack("fewshot_paraphrase")
    with pytest.raises(SkipCell, match=r"wmbench\[gemma\]"):
        attack("One sentence. Another one.", 1.0, np.random.default_rng(0))
