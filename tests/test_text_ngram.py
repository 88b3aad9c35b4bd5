"""The Kneser-Ney n-gram LM, generation with a logits processor, and the cached default model.

Checks real behaviour: every next-word distribution is a proper distribution (seen
and unseen contexts), the vectorised tables agree with a slow textbook computation
of interpolated modified Kneser-Ney on a toy corpus, the model prefers real text to
shuffled text, a saved model loads identically, sampling is reproducible and obeys
a watermark-style processor, and the default model is trained once and then loaded.
"""

from __future__ import annotations

import multiprocessing
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmbench.modalities.text import corpus
from wmbench.modalities.text.ngram import (
    BOS_ID,
    EOS_ID,
    UNK_ID,
    NgramLM,
    generate,
    generate_ids,
    paragraphs,
    render,
)
from wmbench.modalities.text.tokenize import normalize, tokenize

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "texts"


@pytest.fixture(scope="module")
def human() -> dict[str, str]:
    texts = corpus.human_texts(SAMPLES)
    assert len(texts) >= 20
    return texts


@pytest.fixture(scope="module")
def lm(human: dict[str, str]) -> NgramLM:
    return NgramLM.train(human.values(), order=3, min_count=1)


def logsumexp(x: np.ndarray) -> float:
    m = np.max(x)
    return float(m + np.log(np.sum(np.exp(x - m))))


# ------------------------------------------------------------------ samples
def test_human_samples_are_single_paragraphs_of_150_to_300_words(human: dict[str, str]) -> None:
    assert len(human) == 24
    for name, text in human.items():
        assert len(paragraphs(text)) == 1, name
        assert 150 <= len(text.split()) <= 300, name


def test_prompts_are_one_per_line() -> None:
    lines = corpus.prompts(SAMPLES)
    assert len(lines) == 24 and len(set(lines)) == 24
    assert all(3 <= len(p.split()) <= 25 for p in lines)


def test_pydoc_help_is_cleaned_to_prose() -> None:
    paras = corpus.pydoc_paragraphs()
    words = sum(len(p.split()) for p in paras)
    assert len(paras) > 500 and words > 20_000
    joined = "\n".join(paras)
    for code_marker in ("::=", ">>>", "+---", "**", "-[ Footnotes ]-", "def f(", '"'):
        assert code_marker not in joined, code_marker
    assert "A function definition is an executable statement." in joined
    assert len(set(paras)) == len(paras)


# ------------------------------------------------------------------ distributions
def test_vocabulary_and_encoding(lm: NgramLM) -> None:
    assert lm.vocab[:3] == ["<unk>", "<s>", "</s>"]
    assert all(lm.index[w] == i for i, w in enumerate(lm.vocab))
    ids = lm.encode(tokenize("The TIDES, the tides; zxqv?"))
    the, tides = lm.index["the"], lm.index["tides"]
    assert ids.tolist() == [the, tides, lm.index[","], the, tides, lm.index[";"], UNK_ID, lm.index["?"]]
    assert lm.encode(["The", "tides"]).tolist() == [the, tides]
    assert lm.surface[the] == "the" and lm.surface[lm.index["i"]] == "I"


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_next_logprobs_is_a_distribution_for_any_context(lm: NgramLM, data: st.DataObject) -> None:
    context = data.draw(st.lists(st.integers(0, lm.vocab_size - 1), max_size=6))
    lp = lm.next_logprobs(context)
    assert lp.shape == (lm.vocab_size,) and lp.dtype == np.float64
    assert abs(logsumexp(lp)) < 1e-9
    assert lp[BOS_ID] == -np.inf
    assert np.isfinite(np.delete(lp, BOS_ID)).all()


def test_unseen_context_backs_off_to_lower_orders(lm: NgramLM) -> None:
    a, b = lm.index["heron"], lm.index["kettle"]
    lp = lm.next_logprobs([a, b])
    assert abs(logsumexp(lp)) < 1e-9
    # "heron kettle" never occurs and "kettle" is followed by a few words only, so the
    # bigram level decides: seen continuations of "kettle" beat everything else.
    seen = {lm.index[w] for w in ("after", "does", "has", "to", ",", ".")} & set(np.argsort(lp)[-6:])
    assert seen


def test_frequent_continuation_is_more_probable() -> None:
    lm = NgramLM.train(["the cat sat on the mat"] * 5 + ["the cat ran off"], order=3, min_count=1)
    lp = lm.next_logprobs(lm.encode(["the", "cat"]))
    assert lp[lm.index["sat"]] > lp[lm.index["ran"]] > lp[lm.index["mat"]]


def test_kneser_ney_counts_contexts_not_occurrences() -> None:
    # "francisco" is frequent but only ever follows "san"; "glasses" is rarer but
    # follows many words. In a new context KN must prefer "glasses".
    texts = ["i saw san francisco today"] * 8 + [f"{w} glasses here" for w in ("red", "old", "new", "my")]
    lm = NgramLM.train(texts, order=2, min_count=1)
    lp = lm.next_logprobs([lm.index["here"]])
    assert lp[lm.index["glasses"]] > lp[lm.index["francisco"]]


def reference_probs(seqs: list[list[int]], order: int, v: int, hist: tuple[int, ...]) -> np.ndarray:
    """Textbook interpolated modified KN, one probability at a time with dictionaries."""
    padded = [[BOS_ID] * (order - 1) + s + [EOS_ID] for s in seqs]
    raw: list[Counter[tuple[int, ...]]] = [Counter() for _ in range(order + 1)]
    for s in padded:
        for i, w in enumerate(s):
            if w == BOS_ID:
                continue
            for n in range(1, order + 1):
                if i - n + 1 >= 0:
                    raw[n][tuple(s[i - n + 1:i + 1])] += 1
    adj: list[dict[tuple[int, ...], int]] = [{}]
    for n in range(1, order + 1):
        if n == order:
            adj.append(dict(raw[n]))
        else:
            left = Counter(g[1:] for g in raw[n + 1])
            adj.append({g: (c if g[0] == BOS_ID else left[g]) for g, c in raw[n].items()})
    disc = [()]
    rows: list[dict[tuple[int, ...], dict[int, int]]] = [{}]
    for n in range(1, order + 1):
        cc = Counter(adj[n].values())
        assert all(cc[k] for k in (1, 2, 3, 4)), "toy corpus must exercise every discount"
        y = cc[1] / (cc[1] + 2 * cc[2])
        disc.append((0.0, 1 - 2 * y * cc[2] / cc[1], 2 - 3 * y * cc[3] / cc[2], 3 - 4 * y * cc[4] / cc[3]))
        rows.append({})
        for g, c in adj[n].items():
            rows[n].setdefault(g[:-1], {})[g[-1]] = c

    def p(n: int, h: tuple[int, ...], w: int) -> float:
        if n == 0:
            return 0.0 if w == BOS_ID else 1.0 / (v - 1)
        lower = p(n - 1, h[1:], w)
        row = rows[n].get(h, {})
        total = sum(row.values())
        if total == 0:
            return lower
        d = disc[n]
        gamma = sum(d[min(c, 3)] for c in row.values()) / total
        c = row.get(w, 0)
        return (c - d[min(c, 3)]) / total + gamma * lower if c else gamma * lower

    return np.array([p(order, hist, w) for w in range(v)])


@pytest.mark.parametrize("order", [2, 3])
def test_tables_match_textbook_kneser_ney(order: int) -> None:
    rng = np.random.default_rng(7)
    # Zipf-like word frequencies: a long tail, so every discount bucket has members.
    words = [f"w{i}" for i in range(100)]
    zipf = 1 / np.arange(1, 101) ** 1.1
    sents = [list(rng.choice(words, size=rng.integers(2, 12), p=zipf / zipf.sum())) for _ in range(300)]
    lm = NgramLM.train(["\n\n".join(" ".join(s) for s in sents)], order=order, min_count=1)
    seqs = [[lm.index[w] for w in s] for s in sents]
    v = lm.vocab_size
    # Histories seen in training (paragraph starts included) and random, mostly unseen ones.
    seen = sorted({tuple(([BOS_ID] * (order - 1) + s)[i:i + order - 1]) for s in seqs for i in range(len(s))})
    picked = [seen[i] for i in rng.choice(len(seen), size=min(150, len(seen)), replace=False)]
    picked += [tuple(rng.integers(0, v, order - 1).tolist()) for _ in range(20)]
    picked += [(BOS_ID,) * (order - 1)]
    for h in picked:
        expected = reference_probs(seqs, order, v, h)
        np.testing.assert_allclose(lm.next_probs(list(h)), expected, rtol=1e-10, atol=1e-15)
    # The per-position path agrees with the per-context one.
    ids = np.array(seqs[0] + seqs[1])
    slow = [lm.next_logprobs(ids[:i])[ids[i]] for i in range(len(ids))]
    np.testing.assert_allclose(lm.logprob_sequence(ids), slow, rtol=1e-12)


def test_heldout_text_beats_shuffled_words(human: dict[str, str]) -> None:
    names = sorted(human)
    lm = NgramLM.train([human[n] for n in names[:20]] + corpus.pydoc_paragraphs(), order=3, min_count=2)
    rng = np.random.default_rng(0)
    for name in names[20:]:
        words = human[name].split()
        shuffled = " ".join(rng.permutation(words))
        real, fake = lm.perplexity(human[name]), lm.perplexity(shuffled)
        assert real < 0.8 * fake, (name, real, fake)


def test_perplexity_of_training_text_is_lower_than_of_unseen_text(lm: NgramLM, human: dict[str, str]) -> None:
    seen = lm.perplexity(human["09_tides.txt"])
    unseen = lm.perplexity("Quantum chromodynamics describes gluons binding quarks inside hadrons.")
    assert 1 < seen < unseen


def test_train_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        NgramLM.train(["", "   \n\n  "])
    with pytest.raises(ValueError):
        NgramLM.train(["a b"], order=0)
    with pytest.raises(ValueError):
        NgramLM.train(["a b"]).next_logprobs([10_000])


def test_min_count_and_max_vocab_map_rare_words_to_unk() -> None:
    lm = NgramLM.train(["a a a b b c", "a b d"], order=2, min_count=2)
    assert lm.vocab[3:] == ["a", "b"]
    assert lm.encode(["c", "d", "A"]).tolist() == [UNK_ID, UNK_ID, lm.index["a"]]
    assert NgramLM.train(["a a a b b c"], order=2, min_count=1, max_vocab=1).vocab[3:] == ["a"]
    # <unk> was seen in training, so it has real (not just uniform) probability.
    assert lm.next_probs([lm.index["b"]])[UNK_ID] > 0.1


# ------------------------------------------------------------------ persistence
def test_save_load_round_trip(lm: NgramLM, tmp_path: Path) -> None:
    path = lm.save(tmp_path / "m.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temp file left
    back = NgramLM.load(path)
    assert back.vocab == lm.vocab and back.surface == lm.surface and back.order == lm.order
    assert back.discounts == [tuple(d) for d in lm.discounts] and back.info == lm.info
    for a, b in zip(lm.tables, back.tables, strict=True):
        for field in ("ctx_keys", "indptr", "cols", "vals", "gamma", "gram_keys"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    rng = np.random.default_rng(1)
    for _ in range(20):
        ctx = rng.integers(0, lm.vocab_size, size=rng.integers(0, 4))
        np.testing.assert_array_equal(lm.next_logprobs(ctx), back.next_logprobs(ctx))
    # Overwriting in place works too (readers only ever see a whole file).
    lm.save(path)
    assert NgramLM.load(path).vocab == lm.vocab


def test_load_refuses_pickles_and_foreign_files(tmp_path: Path) -> None:
    bad = tmp_path / "pickled.npz"
    np.savez(bad, meta_json=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        NgramLM.load(bad)


# ------------------------------------------------------------------ generation
def test_generate_is_reproducible_and_respects_length(lm: NgramLM) -> None:
    prompt = "The old lighthouse keeper climbed the stairs and"
    a = generate(lm, prompt, 40, np.random.default_rng(3))
    b = generate(lm, prompt, 40, np.random.default_rng(3))
    c = generate(lm, prompt, 40, np.random.default_rng(4))
    assert a == b and a != c
    assert not a.startswith("  ") and (a.startswith(" ") or a[0] in ",.;:!?)")
    assert 0 < len([t for t in tokenize(a) if t.text]) <= 40
    ids = generate_ids(lm, lm.encode_text(prompt), 40, np.random.default_rng(3))
    assert len(ids) == 40 and not set(ids.tolist()) & {UNK_ID, BOS_ID, EOS_ID}
    assert render(lm, ids, after=prompt) == a
    assert generate_ids(lm, [], 0, np.random.default_rng(0)).tolist() == []


def test_special_tokens_are_never_sampled_even_when_boosted(lm: NgramLM) -> None:
    def boost_specials(ctx: np.ndarray, logits: np.ndarray) -> np.ndarray:
        logits[[UNK_ID, BOS_ID, EOS_ID]] += 1000.0
        return logits

    ids = generate_ids(lm, [], 50, np.random.default_rng(0), boost_specials)
    assert len(ids) == 50 and not set(ids.tolist()) & {UNK_ID, BOS_ID, EOS_ID}
    # With stop_at_eos the boosted </s> ends the paragraph at once.
    assert len(generate_ids(lm, [], 50, np.random.default_rng(0), boost_specials, stop_at_eos=True)) == 0


def test_large_delta_on_a_token_set_dominates(lm: NgramLM) -> None:
    green = np.arange(3, lm.vocab_size, 2)  # every other word

    def mark(ctx: np.ndarray, logits: np.ndarray) -> np.ndarray:
        logits[green] += 50.0
        return logits

    ids = generate_ids(lm, lm.encode_text("The weather"), 100, np.random.default_rng(5), mark)
    assert set(ids.tolist()) <= set(green.tolist())


def test_moderate_delta_skews_frequencies(lm: NgramLM) -> None:
    rng = np.random.default_rng(11)
    green = rng.permutation(np.arange(lm.vocab_size))[: lm.vocab_size // 2]
    is_green = np.zeros(lm.vocab_size, bool)
    is_green[green] = True

    def mark(ctx: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return logits + 2.0 * is_green

    plain = generate_ids(lm, [], 400, np.random.default_rng(1))
    marked = generate_ids(lm, [], 400, np.random.default_rng(1), mark)
    assert is_green[marked].mean() > is_green[plain].mean() + 0.15


def test_processor_sees_padded_read_only_history(lm: NgramLM) -> None:
    prompt = lm.encode_text("When the power went out")
    seen: list[np.ndarray] = []

    def spy(ctx: np.ndarray, logits: np.ndarray) -> np.ndarray:
        assert not ctx.flags.writeable
        seen.append(ctx.copy())
        return logits

    ids = generate_ids(lm, prompt, 5, np.random.default_rng(2), spy)
    pad = [BOS_ID] * (lm.order - 1)
    assert [s.tolist() for s in seen] == [pad + prompt.tolist() + ids[:k].tolist() for k in range(5)]


def test_greedy_and_top_k(lm: NgramLM) -> None:
    prompt = lm.encode_text("The river")
    greedy = generate_ids(lm, prompt, 10, np.random.default_rng(0), temperature=0)
    assert greedy.tolist() == generate_ids(lm, prompt, 10, np.random.default_rng(99), temperature=0).tolist()
    assert greedy.tolist() == generate_ids(lm, prompt, 10, np.random.default_rng(5), top_k=1).tolist()
    first = lm.next_logprobs(prompt)
    first[[UNK_ID, BOS_ID, EOS_ID]] = -np.inf
    top3 = set(np.argsort(first)[-3:].tolist())
    for seed in range(20):
        assert generate_ids(lm, prompt, 1, np.random.default_rng(seed), top_k=3)[0] in top3


def test_render_spacing_and_capitals() -> None:
    lm = NgramLM.train(["i said , \" yes . \" then ( quietly ) we left ... ' ok '"], order=2, min_count=1)
    ids = lm.encode(['"', "i", "said", ",", "then", "(", "quietly", ")", ".", "we", "left", "...", '"',
                     "'", "ok", "'", "."])
    assert render(lm, ids, after="Hello.") == ' "I said, then (quietly). We left..." \'Ok\'.'  # "..." ends a sentence
    assert render(lm, lm.encode(["i", "said"]), after="Then") == " i said"
    assert render(lm, lm.encode(["we", "left"])) == "We left"
    assert render(lm, lm.encode(["we", "left"]), after="and ") == "we left"


def test_rendered_text_tokenizes_back_to_the_generated_ids(lm: NgramLM) -> None:
    for seed in range(10):
        ids = generate_ids(lm, [], 300, np.random.default_rng(seed))
        assert lm.encode_text(render(lm, ids)).tolist() == ids.tolist()
    # Glued punctuation that would merge into one token gets a space.
    dots = NgramLM.train(["a . ... ( ( b"], order=2, min_count=1)
    ids = dots.encode([".", "...", "(", "(", "b"])
    assert dots.encode_text(render(dots, ids, after="a")).tolist() == ids.tolist()


def test_generation_speed(lm: NgramLM) -> None:
    start = time.perf_counter()
    generate_ids(lm, [], 500, np.random.default_rng(0))
    rate = 500 / (time.perf_counter() - start)
    assert rate > 1000, f"{rate:.0f} tokens/s"


# ------------------------------------------------------------------ default model cache
def test_default_lm_trains_once_then_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = corpus.default_lm(cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    assert first.info["train_tokens"] > 100_000 and first.vocab_size > 4_000

    def no_training(*args: object, **kwargs: object) -> NgramLM:
        raise AssertionError("should have loaded from the cache")

    monkeypatch.setattr(NgramLM, "train", no_training)
    start = time.perf_counter()
    second = corpus.default_lm(cache_dir=tmp_path)
    assert time.perf_counter() - start < 1.0
    assert second.vocab == first.vocab
    for ctx in ([], [first.index["the"]], [first.index["of"], first.index["the"]], [7, 7]):
        np.testing.assert_array_equal(first.next_logprobs(ctx), second.next_logprobs(ctx))


@pytest.fixture
def small_default_corpus(monkeypatch: pytest.MonkeyPatch, human: dict[str, str]) -> list[str]:
    """Point ``default_lm`` at the human samples alone: the cache logic, at a fraction of the cost."""
    texts = list(human.values())
    monkeypatch.setattr(corpus, "corpus_texts", lambda folder=None: list(texts))
    monkeypatch.setattr(corpus, "corpus_inputs", lambda folder=None: iter(texts))
    return texts


def test_default_lm_retrains_over_a_corrupt_cache(tmp_path: Path, small_default_corpus: list[str]) -> None:
    corpus.default_lm(cache_dir=tmp_path)
    (target,) = tmp_path.iterdir()
    target.write_bytes(b"not a zip file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lm = corpus.default_lm(cache_dir=tmp_path)
    assert any("unreadable" in str(w.message) for w in caught)
    assert NgramLM.load(target).vocab == lm.vocab


def test_unwritable_cache_still_returns_a_model(tmp_path: Path, small_default_corpus: list[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lm = corpus.default_lm(cache_dir=blocker / "cache")
    assert lm.vocab_size > 500 and any("not cached" in str(w.message) for w in caught)


def test_cache_key_tracks_corpus_and_settings() -> None:
    texts = ["one text", "two text"]
    key = corpus.corpus_digest(texts, 3, 2)
    assert key == corpus.corpus_digest(list(texts), 3, 2)
    assert len({key, corpus.corpus_digest([*texts, "x"], 3, 2), corpus.corpus_digest(texts, 4, 2),
                corpus.corpus_digest(texts, 3, 1), corpus.corpus_digest(["one textt", "wo text"], 3, 2)}) == 5


def _worker_vocab(cache_dir: str) -> list[str]:
    return corpus.default_lm(cache_dir=Path(cache_dir)).vocab


def test_concurrent_cold_cache(tmp_path: Path, small_default_corpus: list[str]) -> None:
    # Forked workers inherit the patched corpus; all three race on the cold cache.
    with multiprocessing.get_context("fork").Pool(3) as pool:
        vocabs = pool.map(_worker_vocab, [str(tmp_path)] * 3)
    assert vocabs[0] == vocabs[1] == vocabs[2]
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]  # one file, no temp leftovers
    assert NgramLM.load(next(tmp_path.iterdir())).vocab == vocabs[0]


def test_default_corpus_contents(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    texts = corpus.corpus_texts()
    prompts = corpus.prompts()
    assert texts[: len(prompts)] == prompts
    # The human samples are held out: their perplexity must be measured out of sample.
    assert not set(corpus.human_texts().values()) & set(texts)
    assert normalize("Harrowmere") not in {normalize(w) for w in " ".join(texts).split()}
    # Without the samples folder the corpus is the stdlib part alone.
    monkeypatch.setenv("WMBENCH_TEXT_SAMPLES", str(tmp_path / "nowhere"))
    assert corpus.corpus_texts() == corpus.pydoc_paragraphs() + corpus.docstring_paragraphs()


def test_docstrings_are_read_without_running_the_module(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text(
        '"""A module whose docstring is plain English prose about trains and tides."""\n'
        "raise SystemExit('imported!')\n"
        "def f():\n"
        '    """Return the answer, which is computed with great care by this function.\n\n'
        "    >>> f()\n    42\n"
        '    """\n',
        encoding="utf-8",
    )
    (tmp_path / "broken.py").write_text("def (:\n", encoding="utf-8")
    assert corpus.docstring_paragraphs([src, tmp_path / "broken.py"]) == [
        "A module whose docstring is plain English prose about trains and tides.",
        "Return the answer, which is computed with great care by this function.",
    ]
