"""Strength checks and seeded word selection shared by the text edit attacks.

The edit attacks (:mod:`wmbench_attacks.text_edits`, :mod:`wmbench_attacks.text_chars`,
:mod:`wmbench_attacks.text_structure`) keep one contract, written here once:

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

This module registers no attack, so it has no entry point: the attack modules import it,
and the registry credits each attack to the module that defines it.
"""

from __future__ import annotations

import math
from typing import Sequence, TypeVar

import numpy as np

from wmbench.api import Token

T = TypeVar("T")

FRACTIONS = (0.05, 0.1, 0.2, 0.3)


def check_fraction(strength: float, name: str, upper: float = 1.0) -> float:
    """``strength`` as a float, or ValueError naming the attack when it is not in [0, upper]."""
    value = float(strength)
    if not 0.0 <= value <= upper or math.isnan(value):
        raise ValueError(f"{name}: strength must be a fraction between 0 and {upper:g}, not {strength!r}")
    return value


def random_count(rng: np.random.Generator, fraction: float, n: int) -> int:
    """``fraction * n`` rounded at random (floor or ceil), so its expectation is exact."""
    return min(n, math.floor(fraction * n + rng.random()))


def ranked(rng: np.random.Generator, fraction: float, n: int) -> np.ndarray:
    """The first ``k ~ fraction * n`` of a random ranking of ``n`` items.

    The ranking depends on ``n`` and the generator only, so a larger fraction picks a
    superset of what a smaller one picks with an equally seeded generator.
    """
    k = random_count(rng, fraction, n)
    return rng.permutation(n)[:k]


def word_indices(tokens: list[Token]) -> list[int]:
    """Positions of the word tokens (punctuation and the empty end token left out)."""
    return [i for i, t in enumerate(tokens) if t.is_word]


def pick(options: Sequence[T], u: float) -> T:
    """The option a uniform draw ``u`` in [0, 1) falls on."""
    return options[min(len(options) - 1, int(u * len(options)))]
