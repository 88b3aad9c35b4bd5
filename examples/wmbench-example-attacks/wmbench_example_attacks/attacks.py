"""Two example attacks, written against :mod:`wmbench.api` only.

``vowel_drop`` (text) writes some words the way hurried notes do ("message" ->
"mssge"): a reader still follows, but every changed word is a different token to a
green-list detector. ``posterize`` (image) keeps only the top bits of each colour
channel, a coarse quantisation that removes the low-amplitude detail invisible marks
live in.

Both follow the attack contract that ``wmbench check-plugin NAME`` verifies:
deterministic for an equally seeded ``rng``, strengths listed weak -> strong, the
modality's output type (``str``; ``uint8`` H x W x 3), and the input never modified.
"""

from __future__ import annotations

import math
import re

import numpy as np

from wmbench.api import attack

# Letters only (any script), so digits, punctuation and whitespace come back untouched.
_WORD = re.compile(r"[^\W\d_]+")
_VOWELS = frozenset("aeiouAEIOU")


def _without_inner_vowels(word: str) -> str:
    """Keep the first and last letter (they carry most of a word's legibility)."""
    if len(word) <= 2:
        return word
    return word[0] + "".join(c for c in word[1:-1] if c not in _VOWELS) + word[-1]


@attack("vowel_drop", modality="text", strengths=[0.1, 0.25, 0.5, 1.0])  # weak -> strong
def vowel_drop(text: str, strength: float, rng: np.random.Generator) -> str:
    """Drop the inner vowels of this fraction of the words ("message" -> "mssge").

    The words are ranked once by ``rng`` whatever the strength, so with equally seeded
    generators a stronger attack changes a superset of the words a weaker one changes.
    The count is rounded up or down at random so that its expectation is exact.
    """
    fraction = float(strength)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"vowel_drop: strength must be a fraction between 0 and 1, not {strength!r}")
    words = [m for m in _WORD.finditer(text) if _without_inner_vowels(m.group()) != m.group()]
    count = min(len(words), math.floor(fraction * len(words) + rng.random()))
    chosen = sorted(rng.permutation(len(words))[:count])
    pieces, end = [], 0
    for i in chosen:
        match = words[i]
        pieces += [text[end:match.start()], _without_inner_vowels(match.group())]
        end = match.end()
    return "".join(pieces) + text[end:]


@attack("posterize", modality="image", strengths=[6, 5, 4, 3, 2])  # bits kept: weak -> strong
def posterize(image: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """Keep only the top `strength` bits of each colour channel (8: unchanged).

    Each value moves to the middle of its quantisation step rather than its floor, so
    the image keeps its mean brightness. No randomness: ``rng`` is not used.
    """
    bits = int(strength)
    if not 1 <= bits <= 8 or bits != strength:
        raise ValueError(f"posterize: strength must be a whole number of bits from 1 to 8, not {strength!r}")
    shift = 8 - bits
    if shift == 0:
        return image.copy()
    floor = (image >> shift) << shift  # a new array: the input is never written to
    return (floor + (1 << (shift - 1))).astype(np.uint8)
