"""Edit attacks on text: words deleted, inserted or swapped, typos, invisible characters,
case changes, sentence reordering, truncation and copy-paste dilution.

Frequency-skew marks (green lists) are read by counting keyed "green" tokens, so an
attack works by changing which tokens the detector sees (substitutions, typos,
look-alike letters, zero-width characters), by breaking the contexts their green lists
hang on (insertions, deletions, swaps, reordering), or by adding or removing text so
the green share sinks towards its base rate (dilution, truncation).

Every attack works on the faithful tokens of :mod:`wmbench.modalities.text.tokenize` and changes
only the tokens it picks, so whitespace, line breaks and untouched words come back
exactly. Fractions count *eligible* words (for ``typo`` words with two letters or
more, for ``homoglyph`` words with a letter that has a look-alike, ...; for most
English text that is nearly every word). The number of edits is the fraction times
that count, rounded up or down at random so that its expectation is exact and a
short text is not edited more than asked.

All random draws are made in a fixed order that does not depend on the strength
(the words are ranked once, and each word's edit is drawn once), so with equally
seeded generators a stronger attack edits a superset of what a weaker one edits, as
the image attack ``occlusion`` covers a superset of its weaker self. Empty or
whitespace-only input comes back unchanged.
"""

from __future__ import annotations

import math
import re
import unicodedata
from importlib.resources import files

import numpy as np

from wmbench.api import Token, attack, detokenize, tokenize

FRACTIONS = (0.05, 0.1, 0.2, 0.3)


# --- shared helpers ---------------------------------------------------------------------------


def _fraction(strength: float, name: str, upper: float = 1.0) -> float:
    value = float(strength)
    if not 0.0 <= value <= upper or math.isnan(value):
        raise ValueError(f"{name}: strength must be a fraction between 0 and {upper:g}, not {strength!r}")
    return value


def _count(rng: np.random.Generator, fraction: float, n: int) -> int:
    """``fraction * n`` rounded at random (floor or ceil), so its expectation is exact."""
    return min(n, math.floor(fraction * n + rng.random()))


def _ranked(rng: np.random.Generator, fraction: float, n: int) -> np.ndarray:
    """The first ``k ~ fraction * n`` of a random ranking of ``n`` items.

    The ranking depends on ``n`` and the generator only, so a larger fraction picks a
    superset of what a smaller one picks with an equally seeded generator.
    """
    k = _count(rng, fraction, n)
    return rng.permutation(n)[:k]


def _word_indices(tokens: list[Token]) -> list[int]:
    return [i for i, t in enumerate(tokens) if t.is_word]


def _edit_words(text: str, strength: float, rng: np.random.Generator, name: str,
                eligible, edit) -> str:
    """Apply ``edit(word, draws) -> word`` to a fraction of the eligible word tokens.

    ``draws`` are three uniforms in [0, 1) per eligible word, drawn once for all of
    them, so each word gets the same edit whatever the strength.
    """
    fraction = _fraction(strength, name)
    tokens = tokenize(text)
    candidates = [i for i, t in enumerate(tokens) if t.is_word and eligible(t.text)]
    if not candidates:
        return text
    chosen = _ranked(rng, fraction, len(candidates))
    draws = rng.random((len(candidates), 3))
    out = list(tokens)
    for c in chosen:
        i = candidates[c]
        out[i] = Token(edit(tokens[i].text, draws[c]), tokens[i].space_before)
    return detokenize(out)


def _pick(options, u: float):
    return options[min(len(options) - 1, int(u * len(options)))]


def _joined_space(deleted: str, token: Token) -> str:
    """Whitespace in front of ``token`` once the tokens before it (whose space was
    ``deleted``) are gone: the larger break wins (a paragraph break survives), and
    on a tie a word keeps the deleted gap (start of text, after a quote) while
    punctuation keeps its own (so "a word, b" becomes "a, b", not "a , b")."""
    nd, no = deleted.count("\n"), token.space_before.count("\n")
    if nd != no:
        return deleted if nd > no else token.space_before
    return deleted if token.is_word else token.space_before


def _without(tokens: list[Token], drop: set[int]) -> list[Token]:
    out: list[Token] = []
    pending: str | None = None
    for i, t in enumerate(tokens):
        if i in drop:
            if pending is None or t.space_before.count("\n") > pending.count("\n"):
                pending = t.space_before
            continue
        if pending is not None:
            space = pending if not out and t.text else _joined_space(pending, t)
            t = Token(t.text, space)
            pending = None
        out.append(t)
    return out


# --- word-level edits -------------------------------------------------------------------------


@attack("word_delete", modality="text", strengths=FRACTIONS)
def word_delete(text: str, strength: float, rng: np.random.Generator) -> str:
    """Delete this fraction of the words, chosen at random.

    Punctuation stays; the gap closes up so that no double space appears and a
    paragraph break survives the deletion of the word before or after it.
    """
    fraction = _fraction(strength, "word_delete")
    tokens = tokenize(text)
    words = _word_indices(tokens)
    if not words:
        return text
    chosen = _ranked(rng, fraction, len(words))
    return detokenize(_without(tokens, {words[c] for c in chosen}))


FUNCTION_WORDS = (
    "the a an of and to in that it is was for on with as at by but or so just then also "
    "very really quite still even only well this there some all"
).split()


@attack("word_insert", modality="text", strengths=FRACTIONS)
def word_insert(text: str, strength: float, rng: np.random.Generator) -> str:
    """Insert this many words per word of text (fraction), after random words.

    Each inserted word is, with even odds, a common function word or a word drawn
    from the text itself (lower-cased if it was capitalised), so the insertions do not
    bring in vocabulary the text lacks. Strengths above 1 are allowed (up to 10).
    """
    fraction = _fraction(strength, "word_insert", upper=10.0)
    tokens = tokenize(text)
    words = _word_indices(tokens)
    if not words:
        return text
    n = len(words)
    k = math.floor(fraction * n + rng.random())
    draws = rng.random((k, 3))  # rows are drawn in order: a weaker attack's rows are a prefix
    inserted: dict[int, list[str]] = {}
    for where, kind, which in draws:
        if kind < 0.5:
            word = _pick(FUNCTION_WORDS, which)
        else:
            word = tokens[_pick(words, which)].text
            if len(word) > 1 and word[0].isupper() and word[1:].islower():
                word = word.lower()
        inserted.setdefault(_pick(words, where), []).append(word)
    out: list[Token] = []
    for i, t in enumerate(tokens):
        out.append(t)
        out.extend(Token(w, " ") for w in inserted.get(i, ()))
    return detokenize(out)


@attack("word_swap", modality="text", strengths=FRACTIONS)
def word_swap(text: str, strength: float, rng: np.random.Generator) -> str:
    """Swap adjacent word pairs, so that about this fraction of the words move.

    Only two words side by side (no punctuation or line break between them) swap,
    and only if they differ; the pairs do not overlap. Spacing stays as it was.
    """
    fraction = _fraction(strength, "word_swap")
    tokens = tokenize(text)
    n = len(tokens)
    starts = [i for i in range(n - 1)
              if tokens[i].is_word and tokens[i + 1].is_word and "\n" not in tokens[i + 1].space_before
              and tokens[i].text != tokens[i + 1].text]
    if not starts:
        return text
    n_words = sum(t.is_word for t in tokens)
    pairs = min(len(starts), math.floor(fraction * n_words / 2.0 + rng.random()))
    out = list(tokens)
    used: set[int] = set()
    taken = 0
    for c in rng.permutation(len(starts)):
        if taken >= pairs:
            break
        i = starts[c]
        if i in used or i + 1 in used:
            continue
        used.update((i, i + 1))
        out[i] = Token(tokens[i + 1].text, tokens[i].space_before)
        out[i + 1] = Token(tokens[i].text, tokens[i + 1].space_before)
        taken += 1
    return detokenize(out)


# --- character-level edits --------------------------------------------------------------------

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
            i = _pick(pairs, u[1])
            return word[:i] + word[i + 1] + word[i] + word[i + 2:]
        kind = 2  # e.g. "aa": nothing to swap, duplicate instead
    i = _pick(letters, u[1])
    if kind == 1:  # drop
        return word[:i] + word[i + 1:]
    if kind == 2:  # duplicate
        return word[:i] + word[i] + word[i:]
    ch = word[i]  # replace by a keyboard neighbour (any other letter off the QWERTY layout)
    options = _NEIGHBOURS.get(ch.lower()) or _ALPHABET.replace(ch.lower(), "")
    new = _pick(options, u[2])
    return word[:i] + (new.upper() if ch.isupper() else new) + word[i + 1:]


@attack("typo", modality="text", strengths=FRACTIONS)
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
    i = _pick([i for i, ch in enumerate(word) if ch in HOMOGLYPHS], u[1])
    return word[:i] + _pick(HOMOGLYPHS[word[i]], u[2]) + word[i + 1:]


@attack("homoglyph", modality="text", strengths=FRACTIONS)
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
    i = _pick(_gaps(word), u[1])
    return word[:i] + _pick(ZERO_WIDTH, u[2]) + word[i:]


@attack("zero_width", modality="text", strengths=FRACTIONS)
def zero_width(text: str, strength: float, rng: np.random.Generator) -> str:
    """Insert one zero-width character (U+200B, U+200C, U+200D or U+2060) inside this fraction of the words.

    Invisible to a reader; a tokenizer sees the word split in two around a symbol.
    NFKC keeps these characters: the detector must strip format characters (Cf) first.
    """
    return _edit_words(text, strength, rng, "zero_width", lambda w: bool(_gaps(w)), _zero_width)


def _case_options(word: str) -> list[str]:
    title = word[:1].upper() + word[1:].lower()
    return [w for w in dict.fromkeys((word.upper(), word.lower(), title)) if w != word]


@attack("case_change", modality="text", strengths=FRACTIONS)
def case_change(text: str, strength: float, rng: np.random.Generator) -> str:
    """Upper-, lower- or title-case this fraction of the words (always a different casing).

    A control: a detector that case-folds before scoring (wmbench's marks do) cannot
    be hurt by it, so its curve should stay flat; one that does not is broken by it.
    """
    return _edit_words(text, strength, rng, "case_change", lambda w: bool(_case_options(w)),
                       lambda w, u: _pick(_case_options(w), u[1]))


# --- sentence- and document-level edits -------------------------------------------------------

_TERMINAL = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]+")
_CLOSERS = frozenset("\"')]}\u2019\u201d\u00bb")


def _sentences(tokens: list[Token]) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of the sentences: ending at ``.``/``!``/``?`` (with
    any closing quotes or brackets right after) or at a line break."""
    spans: list[tuple[int, int]] = []
    start = i = 0
    n = len(tokens)
    while i < n:
        t = tokens[i]
        if i > start and "\n" in t.space_before:
            spans.append((start, i))
            start = i
        if not t.is_word and _TERMINAL.fullmatch(t.text):
            j = i + 1
            while j < n and tokens[j].space_before == "" and tokens[j].text and set(tokens[j].text) <= _CLOSERS:
                j += 1
            spans.append((start, j))
            start = i = j
            continue
        i += 1
    if start < n:
        spans.append((start, n))
    return spans


@attack("sentence_shuffle", modality="text", strengths=(0.25, 0.5, 1.0))
def sentence_shuffle(text: str, strength: float, rng: np.random.Generator) -> str:
    """Move this fraction of the sentences to random places (1.0: every sentence moves).

    The chosen sentences trade places along one random cycle, so each of them lands
    somewhere else while the rest stay put (at least two move when any does). The
    whitespace between sentences, paragraph breaks included, stays where it was.
    No word changes: a bag-of-words mark (``unigram``, ``lexical``) cannot notice;
    a context-hashed one (``kgw``) loses only the pairs across sentence boundaries.
    """
    fraction = _fraction(strength, "sentence_shuffle")
    tokens = tokenize(text)
    end = tokens[-1:] if tokens and tokens[-1].text == "" else []
    body = tokens[: len(tokens) - len(end)]
    spans = _sentences(body)
    m = len(spans)
    if m < 2:
        return text
    k = _count(rng, fraction, m)
    if k == 1:
        k = 2
    chosen = rng.permutation(m)[:k]
    placed = list(range(m))  # placed[slot] = sentence shown in that slot
    for j in range(k):
        placed[chosen[(j + 1) % k]] = chosen[j]
    out: list[Token] = []
    for slot, s in enumerate(placed):
        a, b = spans[s]
        out.append(Token(body[a].text, body[spans[slot][0]].space_before))
        out.extend(body[a + 1:b])
    return detokenize(out + end)


@attack("truncate", modality="text", strengths=(200, 100, 50, 25))
def truncate(text: str, strength: int, rng: np.random.Generator) -> str:
    """Keep only the first N words (and the punctuation right after the last one).

    A text of N words or fewer comes back unchanged. Fewer words means fewer scored
    tokens, so the same green share gives a weaker p-value. ``rng`` is unused.
    """
    if isinstance(strength, bool) or float(strength) != int(strength) or int(strength) < 0:
        raise ValueError(f"truncate: strength must be a whole number of words >= 0, not {strength!r}")
    keep = int(strength)
    tokens = tokenize(text)
    words = _word_indices(tokens)
    if len(words) <= keep:
        return text
    if keep == 0:
        return ""
    cut = words[keep - 1] + 1
    while cut < len(tokens) and tokens[cut].text and not tokens[cut].is_word and tokens[cut].space_before == "":
        cut += 1
    return detokenize(tokens[:cut])


# Filler for `dilute`: original plain prose written for this module (not a sample text),
# everyday topics, one paragraph per string. About 2,800 words: enough to dilute a
# 300-word text to 10 %; longer texts reuse it from the start. It is package data of
# wmbench's text modality rather than a literal here, so the prose reads and diffs as prose.
FILLER_FILE = "data/dilute_filler.txt"


def _read_filler() -> tuple[str, ...]:
    """The filler paragraphs, one string each (the file wraps them; blank lines part them)."""
    text = files("wmbench.modalities.text").joinpath(FILLER_FILE).read_text(encoding="utf-8")
    return tuple(" ".join(block.split()) for block in text.split("\n\n") if block.strip())


FILLER = _read_filler()


def _filler_sentences() -> list[tuple[int, list[Token], int]]:
    """(paragraph index, tokens, word count) of every filler sentence, in order."""
    out = []
    for p, paragraph in enumerate(FILLER):
        tokens = tokenize(paragraph)
        for a, b in _sentences(tokens):
            sentence = [Token(tokens[a].text, "")] + tokens[a + 1:b]
            out.append((p, sentence, sum(t.is_word for t in sentence)))
    return out


_FILLER_SENTENCES = _filler_sentences()
_PARAGRAPH_STARTS = [i for i, s in enumerate(_FILLER_SENTENCES) if i == 0 or s[0] != _FILLER_SENTENCES[i - 1][0]]


def _render(sentences: list[tuple[int, list[Token]]]) -> str:
    """Sentences joined by a space within a paragraph and a blank line between paragraphs."""
    parts: list[str] = []
    for j, (p, tokens) in enumerate(sentences):
        if j:
            parts.append(" " if p == sentences[j - 1][0] else "\n\n")
        parts.append(detokenize(tokens))
    return "".join(parts)


@attack("dilute", modality="text", strengths=(0.75, 0.5, 0.25, 0.1))
def dilute(text: str, strength: float, rng: np.random.Generator) -> str:
    """Copy-paste dilution: embed the text, untouched, in human prose so it is this fraction of the words.

    The filler is plain English written for this module (everyday topics, not one of
    the bench's sample texts), taken in order from a random paragraph on and cut to the
    exact word count; the text goes in as its own paragraph at a random sentence
    boundary. The original stays a contiguous substring: a detector that scores
    windows can still find it, one that scores the whole document sees the green share
    pulled towards its base rate. Filler beyond its ~2,800 words repeats, which
    adds no new tokens for marks that score each distinct token once.
    """
    share = float(strength)
    if not 0.0 < share <= 1.0 or math.isnan(share):
        raise ValueError(f"dilute: strength must be the original's share of the words, in (0, 1], not {strength!r}")
    n = sum(t.is_word for t in tokenize(text))
    if n == 0 or share == 1.0:
        return text
    needed = round(n * (1.0 - share) / share)
    first = _PARAGRAPH_STARTS[int(rng.random() * len(_PARAGRAPH_STARTS))]
    position = rng.random()
    taken: list[tuple[int, list[Token]]] = []
    total = 0
    j = first
    while total < needed:
        p, tokens, count = _FILLER_SENTENCES[j % len(_FILLER_SENTENCES)]
        p += len(FILLER) * (j // len(_FILLER_SENTENCES))  # a repeat starts a new paragraph
        if total + count > needed:  # cut the last sentence at the exact word count
            words = _word_indices(tokens)
            tokens = tokens[: words[needed - total - 1] + 1] + [Token(".", "")]
            count = needed - total
        taken.append((p, tokens))
        total += count
        j += 1
    cut = int(position * (len(taken) + 1)) if taken else 0
    parts = [_render(taken[:cut]), text, _render(taken[cut:])]
    if not parts[0]:
        del parts[0]
    if not parts[-1]:
        del parts[-1]
    return "\n\n".join(parts)


__all__ = [
    "FILLER",
    "FUNCTION_WORDS",
    "HOMOGLYPHS",
    "ZERO_WIDTH",
    "case_change",
    "dilute",
    "homoglyph",
    "sentence_shuffle",
    "truncate",
    "typo",
    "word_delete",
    "word_insert",
    "word_swap",
    "zero_width",
]
