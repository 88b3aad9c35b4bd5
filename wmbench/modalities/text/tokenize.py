"""Word-level tokenizer whose output puts the exact input text back together.

Why faithful: text attacks (synonym swaps, deletions, paraphrase-like edits) rewrite
individual tokens and must hand back a document that differs from the original only
where they touched it. So every character of the input belongs to exactly one token:
``Token.space_before`` holds the whitespace run in front of the token and
``Token.text`` the token itself, and ``detokenize(tokenize(s)) == s`` for every
``str`` (tabs, newlines, emoji, combining marks, lone surrogates included).

Token kinds, tried in this order at each position:

* URL: ``http(s)://`` or ``ftp://`` up to whitespace, minus trailing punctuation.
* word: a run of Unicode letters, digits, underscores and combining marks, with
  internal apostrophes (``don't``, ``dog’s``) and hyphens (``well-known``) joining
  word pieces, and ``.``/``,``/``:`` joining digits (``3.14``, ``1,000``, ``10:30``).
* symbol: any other single non-space character, extended to a run of the same
  character (``...``, ``--``, ``!!``) and to what modifies it: combining marks,
  skin-tone modifiers and zero-width-joined symbols (an emoji sequence stays whole).

When the text ends in whitespace, the last token is an *end token* with
``text == ""`` whose ``space_before`` is that trailing whitespace; it is the only
token that can be empty. ``token_forms()`` and ``Token.is_word`` skip it.

``normalize`` gives the scoring form (NFKC, casefold, one apostrophe) under which
"The", "the" and "ＴＨＥ" are one word for both the marks and the language model.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache


def _mark_class_body() -> str:
    """Regex class body of every combining mark (Unicode category M*).

    ``re``'s ``\\w`` leaves out combining marks, so "café" written with U+0301 would
    split in two. All marks live in U+0300..U+1FFFF or U+E0100..U+E01EF (variation
    selectors); scanning only those keeps the import cost near 20 ms
    (a test checks the whole code space).
    """
    ranges: list[tuple[int, int]] = []
    for lo, hi in ((0x300, 0x20000), (0xE0000, 0xE1000)):
        for cp in range(lo, hi):
            if unicodedata.category(chr(cp))[0] == "M":
                if ranges and ranges[-1][1] == cp - 1:
                    ranges[-1] = (ranges[-1][0], cp)
                else:
                    ranges.append((cp, cp))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


MARKS = _mark_class_body()
_WORD_CHAR = rf"[\w{MARKS}]"
_APOSTROPHES = "'\u2019"  # ASCII and typographic (right single quotation mark)
_URL = r"(?:https?|ftp)://[^\s<>\"]*[^\s<>\".,;:!?)\]}'\u2019\u201d]"
_WORD = rf"{_WORD_CHAR}+(?:(?:[{_APOSTROPHES}\-]|(?<=\d)[.,:](?=\d)){_WORD_CHAR}+)*"
# What may follow a symbol and still belong to it: combining marks (an emoji's
# variation selector), skin-tone modifiers, and zero-width-joined symbols (family emoji).
_SYMBOL_TAIL = rf"(?:[{MARKS}\U0001F3FB-\U0001F3FF]|\u200d[^\w\s])*"
# Groups: 1 = leading whitespace, 2 = URL or word, 3 = symbol (4 = its first char, for
# the run backreference). The empty ``\Z`` alternative captures trailing whitespace.
_TOKEN_RE = re.compile(rf"(\s*)(?:({_URL}|{_WORD})|(([^\w\s])\4*{_SYMBOL_TAIL})|\Z)")

_FOLD_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


@dataclass(frozen=True, slots=True)
class Token:
    """One token and the whitespace in front of it; ``text == ""`` only for the end token."""

    text: str
    space_before: str = ""

    @property
    def is_word(self) -> bool:
        """True for words and URLs (what marks and the LM count as words), False for symbols."""
        first = self.text[:1]
        return bool(first) and (first.isalnum() or first == "_" or unicodedata.category(first)[0] == "M")

    def __str__(self) -> str:
        return self.space_before + self.text


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens that concatenate back to exactly ``text``."""
    out: list[Token] = []
    append = out.append
    # findall is measurably faster than finditer + group(); the 4th group is the
    # symbol-run helper. Both captures empty means the \Z match: only its
    # whitespace (if any) is kept, as the end token.
    for space, word, symbol, _ in _TOKEN_RE.findall(text):
        tok = word or symbol
        if tok:
            append(Token(tok, space))
        elif space:
            append(Token("", space))
    return out


def detokenize(tokens: Iterable[Token]) -> str:
    """Inverse of ``tokenize``: the concatenation of each token's space and text."""
    return "".join([t.space_before + t.text for t in tokens])


@lru_cache(maxsize=1 << 16)
def normalize(token_text: str) -> str:
    """Scoring form of a token: NFKC, casefolded, typographic apostrophes made ASCII.

    Marks and the LM must agree on what counts as the same word even after an attack
    changes case or swaps in compatibility characters (full-width letters, ligatures).
    NFKC runs again after casefolding because casefolding can produce sequences that
    are not in NFKC form; a property test checks the result is a fixed point.
    """
    folded = unicodedata.normalize("NFKC", token_text).casefold()
    return unicodedata.normalize("NFKC", folded).translate(_FOLD_APOSTROPHES)


def token_forms(text: str) -> list[str]:
    """Normalized forms of the non-empty tokens of ``text`` (words and symbols, in order)."""
    return [normalize(t.text) for t in tokenize(text) if t.text]


__all__ = ["MARKS", "Token", "detokenize", "normalize", "token_forms", "tokenize"]

