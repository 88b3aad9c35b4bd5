"""The transformers backend on a tiny randomly initialised model the test builds itself.

Nothing is downloaded: the tokenizer is a byte-level BPE trained here on the
built-in texts, the model a two-layer GPT-2 with random weights. A random model is
enough to test the contract: a green-list bias must show in the detector, the
unmarked twin must not, and detection must work from the tokenizer alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from testkit import assert_one_line_error, read_cells
from wmbench import registry
from wmbench.errors import SuiteError
from wmbench.suite import parse_suite
from wmbench.modalities.text.corpus import human_texts, prompts
from wmbench.modalities.text.lm import TransformersBackend, load_lm

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder = tmp_path_factory.mktemp("tiny-lm")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(list(human_texts().values()), trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>",
                                                     eos_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def _kgw(folder: Path, tokens: int = 100):
    return registry.method_instance("kgw", (("lm", str(folder)), ("max_new_tokens", tokens)))


def test_marked_generation_is_detected_and_its_twin_is_not(tiny_lm: Path) -> None:
    method = _kgw(tiny_lm)
    prompt = prompts()[0]
    marked, unmarked = method.embed(prompt, "k"), method.unmarked(prompt, "k")
    assert marked != unmarked
    assert method.embed(prompt, "k") == marked  # deterministic: one seed per prompt
    hit, miss = method.detect(marked, "k"), method.detect(unmarked, "k")
    # a random model writes odd BPE splits that re-tokenising merges: part of the skew is lost
    assert hit.p_value < 1e-4, hit
    assert miss.p_value > 0.01, miss
    assert method.detect(marked, "another key").p_value > 0.01
    assert hit.extra["tokens_scored"] >= 80  # re-tokenising the decoded text finds about the same tokens


def test_unigram_and_kgw_false_alarms_stay_at_alpha(tiny_lm: Path) -> None:
    p_values = []
    for name in ("unigram", "kgw"):
        method = registry.method_instance(name, (("lm", str(tiny_lm)), ("max_new_tokens", 60)))
        for prompt in prompts()[:6]:
            text = method.unmarked(prompt, "k")
            p_values += [method.detect(text, f"key-{i}").p_value for i in range(10)]
    assert sum(p < 0.01 for p in p_values) <= 3, sorted(p_values)[:5]  # 120 trials: binom(120, .01) 99.9 % bound


def test_detection_needs_the_tokenizer_only(tiny_lm: Path) -> None:
    backend = TransformersBackend(str(tiny_lm))
    tokens = backend.scoring_tokens("The harbour was quiet before dawn.")
    assert tokens and all(isinstance(t, str) for t in tokens)
    assert "model" not in backend.__dict__  # the weights were never loaded


def test_perplexity_under_the_suite_lm_differs_from_the_ngram(tiny_lm: Path) -> None:
    text = next(iter(human_texts().values()))
    ppl = load_lm(str(tiny_lm)).perplexity(text)
    # a random model over ~600 tokens is close to uniform: perplexity near the vocabulary size
    assert 100 < ppl < 2000, ppl
    assert abs(ppl - load_lm("ngram").perplexity(text)) > 10


@pytest.mark.parametrize("value, needle", [("no/such/folder", "no model folder"),
                                           (".", "config.json missing")])
def test_a_bad_lm_path_is_one_clear_suite_error(tmp_path: Path, value: str, needle: str) -> None:
    text = f'[samples]\nprompts = ["builtin:prompts"]\n[text]\nlm = "{value}"\n[[methods]]\nname = "kgw"\n'
    with pytest.raises(SuiteError, match=needle) as info:
        parse_suite(text, "s.toml", tmp_path)
    assert "s.toml: text.lm:" in str(info.value)


def test_a_bad_lm_path_exits_2_from_the_cli(tmp_path: Path, cli) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text('[samples]\nprompts = ["builtin:prompts"]\n[text]\nlm = "models/none"\n'
                     '[[methods]]\nname = "kgw"\n', encoding="utf-8")
    code, _, err = cli("run", suite, "--out", tmp_path / "run")
    assert_one_line_error(code, err, "text.lm", "no model folder")


def test_text_section_fills_in_generation_settings(tmp_path: Path, tiny_lm: Path) -> None:
    text = (f'[samples]\nprompts = ["builtin:prompts"]\n[text]\nlm = "{tiny_lm}"\nmax_new_tokens = 40\n'
            '[[methods]]\nname = "kgw"\n[[methods]]\nname = "unigram"\nmax_new_tokens = 10\n'
            '[[methods]]\nname = "lexical"\n')
    suite = parse_suite(text, "s.toml", tmp_path)
    params = [dict(m.params) for m in suite.methods]
    assert params[0] == {"lm": str(tiny_lm), "max_new_tokens": 40}
    assert params[1] == {"lm": str(tiny_lm), "max_new_tokens": 10}  # the method's own value wins
    assert params[2] == {}  # lexical generates nothing
    assert suite.settings["text"]["lm"] == str(tiny_lm) and suite.settings["text"]["max_new_tokens"] == 40


@pytest.mark.slow
def test_a_suite_runs_on_the_local_model(tmp_path: Path, tiny_lm: Path, cli) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text(f'[suite]\nseed = 1\n[samples]\nprompts = ["builtin:prompts"]\n'
                     f'[text]\nlm = "{tiny_lm}"\nmax_new_tokens = 60\n'
                     '[[methods]]\nname = "kgw"\nmax_samples = 2\n'
                     '[[attacks]]\nname = "truncate"\nstrengths = [50, 25]\n', encoding="utf-8")
    code, out, err = cli("run", suite, "--out", tmp_path / "run", "--workers", "1", "--no-progress")
    assert code == 0, err
    cells = list(read_cells(tmp_path / "run").values())
    assert len(cells) == 2 * 3 * 2 and not [c for c in cells if c["error"]]
    clean_marked = [c for c in cells if c["attack"] == "none" and c["marked"]]
    assert all(c["p_value"] < 0.01 for c in clean_marked)
    assert all(c["perplexity"] is not None and c["perplexity"] > 50 for c in cells)  # under the tiny model
    assert all(np.isfinite(c["similarity"]) for c in cells)


def test_perplexity_unattacked_scores_the_clean_texts_only(tmp_path: Path, cli) -> None:
    """``[text] perplexity = "unattacked"``: attacked cells leave perplexity out and say why."""
    suite = tmp_path / "s.toml"
    suite.write_text('[suite]\nseed = 1\n[samples]\nprompts = ["builtin:prompts"]\n'
                     '[text]\nmax_new_tokens = 40\nperplexity = "unattacked"\n'
                     '[[methods]]\nname = "kgw"\nmax_samples = 1\n'
                     '[[attacks]]\nname = "truncate"\nstrengths = [20]\n', encoding="utf-8")
    code, _, err = cli("run", suite, "--out", tmp_path / "run", "--workers", "1", "--no-progress")
    assert code == 0, err
    cells = list(read_cells(tmp_path / "run").values())
    clean = [c for c in cells if c["attack"] == "none"]
    attacked = [c for c in cells if c["attack"] == "truncate"]
    assert len(clean) == len(attacked) == 2
    assert all(c["perplexity"] is not None for c in clean)
    assert all(c["perplexity"] is None for c in attacked)
    assert all('perplexity = "unattacked"' in json.loads(c["extra"])["perplexity_missing"] for c in attacked)


def test_a_bad_perplexity_scope_is_a_suite_error(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match='text.perplexity: must be "all" or "unattacked"'):
        parse_suite('[samples]\nprompts = ["builtin:prompts"]\n[text]\nperplexity = "some"\n'
                    '[[methods]]\nname = "kgw"\n', "s.toml", tmp_path)
