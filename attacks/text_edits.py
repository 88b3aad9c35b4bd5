"""Word edit attacks on text: words deleted, inserted or swapped.

Frequency-skew marks (green lists) are read by counting keyed "green" tokens, so an
attack works by changing which tokens the detector sees (substitutions, typos,
look-alike letters, zero-width characters), by breaking the contexts their green lists
hang on (insertions, deletions, swaps, reordering), or by adding or removing text so
the green share sinks towards its base rate (dilution, truncation).

Character edits (typos, look-alike letters, invisible characters, case) are in
:mod:`wmbench_attacks.text_chars`; sentence reordering, truncation and dilution in
:mod:`wmbench_attacks.text_structure`. All of them keep the contract of
:mod:`wmbench_attacks.text_common` (untouched tokens come back exactly, fractions of
eligible words, a stronger attack edits a superset of what a weaker one edits).
"""

from __future__ import annotations

import math

import numpy as np

from wmbench.api import Token, attack, detokenize, tokenize
from wmbench_attacks.text_common import FRACTIONS, check_fraction, pick, ranked, word_indices


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
    """``tokens`` without the positions in ``drop``, the gaps closed up as ``_joined_space`` says."""
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


@attack("word_delete", modality="text", tags={"family": "word edit"}, strengths=FRACTIONS,
        unit="fraction of words")
def word_delete(text: str, strength: float, rng: np.random.Generator) -> str:
    """Delete this fraction of the words, chosen at random.

    Punctuation stays; the gap closes up so that no double space appears and a
    paragraph break survives the deletion of the word before or after it.
    """
    fraction = check_fraction(strength, "word_delete")
    tokens = tokenize(text)
    words = word_indices(tokens)
    if not words:
        return text
    chosen = ranked(rng, fraction, len(words))
    return detokenize(_without(tokens, {words[c] for c in chosen}))


FUNCTION_WORDS = (
    "the a an of and to in that it is was for on with as at by but or so just then also "
    "very really quite still even only well this there some all"
).split()


@attack("word_insert", modality="text", tags={"family": "word edit"}, strengths=FRACTIONS,
        unit="words inserted per word")
def word_insert(text: str, strength: float, rng: np.random.Generator) -> str:
    """Insert this many words per word of text (fraction), after random words.

    Each inserted word is, with even odds, a common function word or a word drawn
    from the text itself (lower-cased if it was capitalised), so the insertions do not
    bring in vocabulary the text lacks. Strengths above 1 are allowed (up to 10).
    """
    fraction = check_fraction(strength, "word_insert", upper=10.0)
    tokens = tokenize(text)
    words = word_indices(tokens)
    if not words:
        return text
    n = len(words)
    k = math.floor(fraction * n + rng.random())
    draws = rng.random((k, 3))  # rows are drawn in order: a weaker attack's rows are a prefix
    inserted: dict[int, list[str]] = {}
    for where, kind, which in draws:
        if kind < 0.5:
            word = pick(FUNCTION_WORDS, which)
        else:
            word = tokens[pick(words, which)].text
            if len(word) > 1 and word[0].isupper() and word[1:].islower():
                word = word.lower()
        inserted.setdefault(pick(words, where), []).append(word)
    out: list[Token] = []
    for i, t in enumerate(tokens):
        out.append(t)
        out.extend(Token(w, " ") for w in inserted.get(i, ()))
    return detokenize(out)


@attack("word_swap", modality="text", tags={"family": "word edit"}, strengths=FRACTIONS,
        unit="fraction of words moved")
def word_swap(text: str, strength: float, rng: np.random.Generator) -> str:
    """Swap adjacent word pairs, so that about this fraction of the words move.

    Only two words side by side (no punctuation or line break between them) swap,
    and only if they differ; the pairs do not overlap. Spacing stays as it was.
    """
    fraction = check_fraction(strength, "word_swap")
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


__all__ = ["FUNCTION_WORDS", "word_delete", "word_insert", "word_swap"]
