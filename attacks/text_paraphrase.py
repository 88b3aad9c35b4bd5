"""Paraphrase attacks on text: rewording that keeps the sentence and its meaning.

``synonym`` is the classic lexical paraphrase: content words swapped for thesaurus
synonyms, one for one. Against a green-list mark every swapped word is a fresh draw
from the key's green/red split, so the green excess shrinks in proportion to the
words replaced; the ``lexical`` mark, which hides its signal in exactly these
substitutable words, is the most exposed.
"""

from __future__ import annotations

import math

import numpy as np

from wmbench.api import Attack, Thesaurus, ThesaurusUnavailable, Token, detokenize, thesaurus, tokenize


class Synonym(Attack):
    """Synonym paraphrase with a thesaurus (WordNet, else Moby): replace this fraction of the substitutable words.

    Substitutable words are the content words for which the thesaurus offers a
    substitute that fits every plausible reading of the word
    (:meth:`wmbench.modalities.text.thesaurus.Thesaurus.substitutes`: inflected and cased like the
    word it replaces, function words never touched). The number replaced is the
    fraction times their count, rounded up or down at random so its expectation is
    exact; which words and which substitute come from ``rng``, drawn in an order that
    does not depend on the strength, so a stronger attack replaces a superset of the
    words a weaker one does, with the same substitutes. The word count never changes.
    There is no word-sense disambiguation, so some swaps shift the meaning. The
    thesaurus loads once per process; lookups are cached by the thesaurus.
    """

    name = "synonym"
    tags = {"family": "paraphrase"}
    unit = "fraction of substitutable words"
    modality = "text"
    strengths = (0.1, 0.25, 0.5, 0.75, 1.0)

    thesaurus: Thesaurus

    def setup(self) -> None:
        try:
            self.thesaurus = thesaurus()
        except ThesaurusUnavailable as exc:
            raise ThesaurusUnavailable(f"synonym attack: no thesaurus could be loaded: {exc}") from exc

    def apply(self, text: str, strength: float, rng: np.random.Generator) -> str:
        fraction = float(strength)
        if not 0.0 <= fraction <= 1.0 or math.isnan(fraction):
            raise ValueError(f"synonym: strength must be a fraction between 0 and 1, not {strength!r}")
        tokens = tokenize(text)
        substitutes = self.thesaurus.substitutes
        candidates: list[tuple[int, list[str]]] = []
        for i, token in enumerate(tokens):
            if token.is_word:
                options = substitutes(token.text)
                if options:
                    candidates.append((i, options))
        if not candidates:
            return text
        n = len(candidates)
        k = min(n, math.floor(fraction * n + rng.random()))
        order = rng.permutation(n)
        picks = rng.random(n)
        out = list(tokens)
        for c in order[:k]:
            i, options = candidates[c]
            choice = options[min(len(options) - 1, int(picks[c] * len(options)))]
            out[i] = Token(choice, tokens[i].space_before)
        return detokenize(out)


__all__ = ["Synonym"]
