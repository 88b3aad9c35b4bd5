"""The word tokenizer: exact round trip for any string, sensible token boundaries, scoring form.

Text attacks edit single tokens and must hand back the rest of a document untouched,
so the round trip is checked on arbitrary Unicode (surrogates included), on text
built from tricky fragments, and on a megabyte of real prose, which is also timed.
"""

from __future__ import annotations

import sys
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmbench.modalities.text.tokenize import (
    MARKS,
    Token,
    detokenize,
    normalize,
    token_forms,
    tokenize,
)

FRAGMENTS = [
    "don't", "dog’s", "well-known", "pre- and post-war", "3.14", "1,000,000", "10:30", "-5",
    "https://example.com/a?b=1&c=d#frag", "(see http://x.org).", "...", "?!", "--", "—",
    "\n", "\n\n", "\t", "\r\n", " ", "\u00a0", "\u3000", "東京タワー", "日本語。", "café", "cafe\u0301",
    "\u0301", "👍🏽", "👨\u200d👩\u200d👧", "❤️", "🇫🇷", "snake_case", "__init__", "ﬁle", "ＴＨＥ",
    "Straße", "İstanbul", "'quoted'", '"double"', "«guillemets»", "\ud800", "a\u200bb", "x\x00y",
]

any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200)
fragment_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), any_text), max_size=25).map("".join)


def texts(tokens: list[Token]) -> list[str]:
    return [t.text for t in tokens]


@settings(max_examples=400)
@given(st.one_of(any_text, fragment_text))
def test_round_trip_is_exact_for_any_string(s: str) -> None:
    assert detokenize(tokenize(s)) == s


@settings(max_examples=300)
@given(st.one_of(any_text, fragment_text))
def test_token_invariants(s: str) -> None:
    tokens = tokenize(s)
    for i, tok in enumerate(tokens):
        assert all(c.isspace() for c in tok.space_before)
        assert not any(c.isspace() for c in tok.text)
        if tok.text == "":  # only the end token, and only to carry trailing whitespace
            assert i == len(tokens) - 1 and tok.space_before and not tok.is_word
    # Re-tokenizing the detokenized text is stable.
    assert tokenize(detokenize(tokens)) == tokens
    assert token_forms(s) == [normalize(t.text) for t in tokens if t.text]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, world!", ["Hello", ",", "world", "!"]),
        ("Don't stop... ever", ["Don't", "stop", "...", "ever"]),
        ("The dog’s well-known trick", ["The", "dog’s", "well-known", "trick"]),
        ("pi is 3.14, or 1,000:10:30", ["pi", "is", "3.14", ",", "or", "1,000:10:30"]),
        ("end. 3. Next", ["end", ".", "3", ".", "Next"]),
        ("(see https://example.com/a?b=1).", ["(", "see", "https://example.com/a?b=1", ")", "."]),
        ("wait--what?!", ["wait", "--", "what", "?", "!"]),
        ("ok 👍🏽 family 👨\u200d👩\u200d👧 ❤️", ["ok", "👍🏽", "family", "👨\u200d👩\u200d👧", "❤️"]),
        ("cafe\u0301 ole\u0301!", ["cafe\u0301", "ole\u0301", "!"]),
        ("東京タワー、日本", ["東京タワー", "、", "日本"]),
        ("'quoted' \"double\"", ["'", "quoted", "'", '"', "double", '"']),
        ("trailing  \n", ["trailing", ""]),
        ("   ", [""]),
        ("", []),
    ],
)
def test_token_boundaries(text: str, expected: list[str]) -> None:
    assert texts(tokenize(text)) == expected
    assert detokenize(tokenize(text)) == text


def test_whitespace_is_carried_before_each_token() -> None:
    tokens = tokenize("  Two\twords\n\nhere ")
    assert [(t.space_before, t.text) for t in tokens] == [
        ("  ", "Two"), ("\t", "words"), ("\n\n", "here"), (" ", ""),
    ]


def test_is_word() -> None:
    kinds = {t.text: t.is_word for t in tokenize("The 3 ideas, _x and https://a.b! \u0301")}
    assert kinds == {"The": True, "3": True, "ideas": True, ",": False, "_x": True, "and": True,
                     "https://a.b": True, "!": False, "\u0301": True}


def test_mark_class_covers_every_combining_mark() -> None:
    import re

    marks = re.compile(f"[{MARKS}]")
    missing = [cp for cp in range(sys.maxunicode + 1)
               if unicodedata.category(chr(cp))[0] == "M" and not marks.match(chr(cp))]
    assert missing == []


@pytest.mark.parametrize(
    ("a", "b"),
    [("The", "the"), ("THE", "the"), ("ＴＨＥ", "the"), ("ﬁle", "file"), ("Straße", "strasse"),
     ("don’t", "don't"), ("Don't", "don't"), ("cafe\u0301", "café"), ("Ⅻ", "xii")],
)
def test_normalize_merges_spellings(a: str, b: str) -> None:
    assert normalize(a) == normalize(b) == b


def test_normalize_keeps_distinct_words_apart() -> None:
    assert len({normalize(w) for w in ["the", "then", "they", "tea", "3", "3.0", "-", "—"]}) == 8


@settings(max_examples=400)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=30))
def test_normalize_is_idempotent(s: str) -> None:
    assert normalize(normalize(s)) == normalize(s)


def test_a_megabyte_tokenizes_in_well_under_a_second() -> None:
    from pydoc_data.topics import topics

    text = ("\n\n".join(topics.values()) * 3)[:1_000_000]
    tokenize(text[:10_000])  # warm the regex engine's caches
    start = time.perf_counter()
    tokens = tokenize(text)
    elapsed = time.perf_counter() - start
    assert detokenize(tokens) == text
    assert len(tokens) > 150_000
    # ~0.35 s on an idle 2-core box; the bound leaves room for a loaded CI machine.
    assert elapsed < 1.5, f"{elapsed:.2f} s for 1 MB"
