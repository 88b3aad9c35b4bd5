"""Character edit attacks on text: typos, look-alike letters, invisible characters, case changes.

They change which tokens a detector sees without moving any word: a typo or a
homoglyph turns a green token into another string, a zero-width character splits it
in two, and a case change is a control that a case-folding detector must shrug off.
The shared contract (fractions of eligible words, seeded draws in a fixed order) is
in :mod:`wmbench_attacks.text_common`.
"""

from __future__ import annotations

import unicodedata
from typing import Callable

import numpy as np

from wmbench.api import Token, attack, detokenize, tokenize
from wmbench_attacks.text_common import FRACTIONS, check_fraction, pick, ranked


def _edit_words(text: str, strength: float, rng: np.random.Generator, name: str,
                eligible: Callable[[str], bool], edit: Callable[[str, np.ndarray], str]) -> str:
    """Apply ``edit(word, draws) -> word`` to a fraction of the eligible word tokens.

    ``draws`` are three uniforms in [0, 1) per eligible word, drawn once for all of
    them, so each word gets the same edit whatever the strength.
    """
    fraction = check_fraction(strength, name)
    tokens = tokenize(text)
    candidates = [i for i, t in enumerate(tokens) if t.is_word and eligible(t.text)]
    if not candidates:
        return text
    chosen = ranked(rng, fraction, len(candidates))
    draws = rng.random((len(candidates), 3))
    out = list(tokens)
    for c in chosen:
        i = candidates[c]
        out[i] = Token(edit(tokens[i].text, draws[c]), tokens[i].space_before)
    return detokenize(out)


_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_KEYBOARD_ROWS):
    for _c, _ch in enumerate(_row):
        _near = [_row[j] for j in (_c - 1, _c + 1) if 0 <= j < len(_row)]
        for _dr in (-1, 1):
            if 0 <= _r + _dr < len(_KEYBOARD_ROWS):
                _other = _KEYBOARD_ROWS[_r + _dr]
                _near += [_other[j] for j in (_c - 1, _c, _c + 1) if 0 <= j < len(_other)]
        _NEIGHBOURS[_ch] = "".join(dict.fromkeys(_near))
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def _letters(word: str) -> list[int]:
    return [i for i, ch in enumerate(word) if ch.isalpha()]


def _typo(word: str, u: np.ndarray) -> str:
    letters = _letters(word)
    kind = int(u[0] * 4)
    if kind == 0:  # swap two adjacent different letters
        pairs = [i for i in letters if i + 1 < len(word) and word[i + 1].isalpha() and word[i] != word[i + 1]]
        if pairs:
            i = pick(pairs, u[1])
            return word[:i] + word[i + 1] + word[i] + word[i + 2:]
        kind = 2  # e.g. "aa": nothing to swap, duplicate instead
    i = pick(letters, u[1])
    if kind == 1:  # drop
        return word[:i] + word[i + 1:]
    if kind == 2:  # duplicate
        return word[:i] + word[i] + word[i:]
    ch = word[i]  # replace by a keyboard neighbour (any other letter off the QWERTY layout)
    options = _NEIGHBOURS.get(ch.lower()) or _ALPHABET.replace(ch.lower(), "")
    new = pick(options, u[2])
    return word[:i] + (new.upper() if ch.isupper() else new) + word[i + 1:]


@attack("typo", modality="text", tags={"family": "character"}, strengths=FRACTIONS, unit="fraction of words")
def typo(text: str, strength: float, rng: np.random.Generator) -> str:
    """Give this fraction of the words one typo: swap, drop, double or mistype a letter.

    A mistyped letter is a QWERTY neighbour of the right one, in the same case. Words
    of fewer than two letters are left alone, so no word vanishes.
    """
    return _edit_words(text, strength, rng, "typo", lambda w: len(_letters(w)) >= 2, _typo)


# Latin letter -> look-alikes in other scripts (Cyrillic first, then Greek), the pairs of
# Unicode's confusables list that render the same in common fonts. NFKC keeps them apart.
HOMOGLYPHS: dict[str, str] = {
    "a": "\u0430", "c": "\u0441", "d": "\u0501", "e": "\u0435", "h": "\u04bb", "i": "\u0456",
    "j": "\u0458", "o": "\u043e\u03bf", "p": "\u0440", "q": "\u051b", "s": "\u0455",
    "w": "\u051d", "x": "\u0445", "y": "\u0443",
    "A": "\u0410\u0391", "B": "\u0412\u0392", "C": "\u0421", "E": "\u0415\u0395", "H": "\u041d\u0397",
    "I": "\u0406\u0399", "J": "\u0408", "K": "\u041a\u039a", "M": "\u041c\u039c", "N": "\u039d",
    "O": "\u041e\u039f", "P": "\u0420\u03a1", "S": "\u0405", "T": "\u0422\u03a4", "X": "\u0425\u03a7",
    "Y": "\u04ae\u03a5", "Z": "\u0396",
}


def _homoglyph(word: str, u: np.ndarray) -> str:
    i = pick([i for i, ch in enumerate(word) if ch in HOMOGLYPHS], u[1])
    return word[:i] + pick(HOMOGLYPHS[word[i]], u[2]) + word[i + 1:]


@attack("homoglyph", modality="text", tags={"family": "character"}, strengths=FRACTIONS, unit="fraction of words")
def homoglyph(text: str, strength: float, rng: np.random.Generator) -> str:
    """Replace one Latin letter by a Cyrillic or Greek look-alike in this fraction of the words.

    The text reads the same, but the word is a different string for any tokenizer,
    and Unicode normalisation (NFKC) does not map the letters back: undoing it needs a
    confusables "skeleton" (Unicode TS #39) on the detector side.
    """
    return _edit_words(text, strength, rng, "homoglyph",
                       lambda w: any(ch in HOMOGLYPHS for ch in w), _homoglyph)


ZERO_WIDTH = "\u200b\u200c\u200d\u2060"  # space, non-joiner, joiner, word joiner


def _gaps(word: str) -> list[int]:
    """Positions inside ``word`` where a character can go without detaching a combining mark."""
    return [i for i in range(1, len(word)) if unicodedata.category(word[i])[0] != "M"]


def _zero_width(word: str, u: np.ndarray) -> str:
    i = pick(_gaps(word), u[1])
    return word[:i] + pick(ZERO_WIDTH, u[2]) + word[i:]


@attack("zero_width", modality="text", tags={"family": "character"}, strengths=FRACTIONS, unit="fraction of words")
def zero_width(text: str, strength: float, rng: np.random.Generator) -> str:
    """Insert one zero-width character (U+200B, U+200C, U+200D or U+2060) inside this fraction of the words.

    Invisible to a reader; a tokenizer sees the word split in two around a symbol.
    NFKC keeps these characters: the detector must strip format characters (Cf) first.
    """
    return _edit_words(text, strength, rng, "zero_width", lambda w: bool(_gaps(w)), _zero_width)


def _case_options(word: str) -> list[str]:
    title = word[:1].upper() + word[1:].lower()
    return [w for w in dict.fromkeys((word.upper(), word.lower(), title)) if w != word]


@attack("case_change", modality="text", tags={"family": "character"}, strengths=FRACTIONS,
        unit="fraction of words")
def case_change(text: str, strength: float, rng: np.random.Generator) -> str:
    """Upper-, lower- or title-case this fraction of the words (always a different casing).

    A control: a detector that case-folds before scoring (wmbench's marks do) cannot
    be hurt by it, so its curve should stay flat; one that does not is broken by it.
    """
    return _edit_words(text, strength, rng, "case_change", lambda w: bool(_case_options(w)),
                       lambda w, u: pick(_case_options(w), u[1]))


__all__ = ["HOMOGLYPHS", "ZERO_WIDTH", "case_change", "homoglyph", "typo", "zero_width"]
