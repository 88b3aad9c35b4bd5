"""Keyed green lists and their detection statistic, vectorised with numpy.

A green-list mark splits the vocabulary, for each context, into a "green" fraction
gamma and the rest, using a keyed hash; generation favours green tokens. Detection
counts green tokens among the scored ones: without the mark each is green with
probability gamma, so the count is Binomial(n, gamma) and the p-value is its exact
upper tail (the z-score is reported too, as in Kirchenbauer et al. 2023).

Everything works on 64-bit token hashes, not on a model's vocabulary ids, so a text
can be scored without the model that wrote it, and out-of-vocabulary words simply
get a hash like any other. Each (context, token) pair is scored once: a repeated
phrase would otherwise count its green tokens again and again and inflate z.

Hashing runs per *distinct* token string (Python), the rest per token (numpy): a
text of a million tokens usually has a few tens of thousands of distinct words.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from wmbench.stats import binomial_tail

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a fast bijective scrambler of uint64 values."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def string_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def key_hash(key: str) -> np.uint64:
    return np.uint64(string_hash(f"wmbench-text-key:{key}"))


def token_hashes(tokens: Sequence[str]) -> np.ndarray:
    """uint64 hash of every token (already normalised), hashing each distinct string once."""
    if len(tokens) == 0:
        return np.zeros(0, dtype=np.uint64)
    distinct, inverse = np.unique(np.asarray(tokens, dtype=object).astype(str), return_inverse=True)
    table = np.fromiter((string_hash(t) for t in distinct), dtype=np.uint64, count=len(distinct))
    return table[inverse.reshape(-1)]


def context_hashes(hashes: np.ndarray, width: int) -> np.ndarray:
    """For each position, a hash of the ``width`` tokens before it (0 = no context).

    Positions with fewer than ``width`` predecessors get the hash of what there is,
    mixed with a start marker, so the first tokens can be scored too.
    """
    n = len(hashes)
    ctx = np.zeros(n, dtype=np.uint64)
    if width == 0 or n == 0:
        return ctx
    with np.errstate(over="ignore"):
        for lag in range(1, width + 1):
            shifted = np.full(n, _GOLDEN, dtype=np.uint64)  # start-of-text marker
            shifted[lag:] = hashes[:-lag]
            ctx = _mix(ctx * _GOLDEN + shifted + np.uint64(lag))
    return ctx


def green_score(contexts: np.ndarray, tokens: np.ndarray, key: np.uint64) -> np.ndarray:
    """A keyed pseudo-random number in [0, 1) per (context, token): green when < gamma."""
    with np.errstate(over="ignore"):
        mixed = _mix(_mix(contexts ^ key) ^ tokens)
    return (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)  # top 53 bits


def green_mask(context: np.uint64, vocab_hashes: np.ndarray, key: np.uint64, gamma: float) -> np.ndarray:
    """Green list of the whole vocabulary for one context: what generation biases."""
    return green_score(np.full(len(vocab_hashes), context, dtype=np.uint64), vocab_hashes, key) < gamma


@dataclass(frozen=True)
class GreenCount:
    tokens_scored: int  # distinct (context, token) pairs
    green: int
    gamma: float

    @property
    def z(self) -> float:
        n, g = self.tokens_scored, self.green
        if n == 0:
            return 0.0
        return (g - self.gamma * n) / math.sqrt(n * self.gamma * (1 - self.gamma))

    @property
    def p_value(self) -> float:
        return binomial_tail(self.green, self.tokens_scored, self.gamma)


def count_green(hashes: np.ndarray, key: np.uint64, gamma: float, width: int) -> GreenCount:
    """Green tokens among the distinct (context, token) pairs of a hashed text.

    Dedupe without argsort: each pair's 64-bit hash carries its green bit in the low
    bit (green is a function of the pair, so both agree within a pair), one plain
    sort groups equal pairs, and the first of each group is counted.
    """
    if len(hashes) == 0:
        return GreenCount(0, 0, gamma)
    tagged = _tagged_pairs(hashes, key, gamma, width)
    tagged.sort()
    distinct = np.empty(len(tagged), dtype=bool)
    distinct[0] = True
    np.not_equal(tagged[1:], tagged[:-1], out=distinct[1:])
    firsts = tagged[distinct]
    return GreenCount(tokens_scored=int(len(firsts)), green=int((firsts & np.uint64(1)).sum()), gamma=gamma)


def _tagged_pairs(hashes: np.ndarray, key: np.uint64, gamma: float, width: int) -> np.ndarray:
    """Per position, a 64-bit hash of its (context, token) pair with its green bit as the low bit."""
    contexts = context_hashes(hashes, width)
    green = (green_score(contexts, hashes, key) < gamma).astype(np.uint64)
    with np.errstate(over="ignore"):
        return (_mix(contexts * _GOLDEN ^ hashes) & ~np.uint64(1)) | green


def explain_green(hashes: np.ndarray, key: np.uint64, gamma: float, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per position of a hashed text: (green, first), what :func:`count_green` counts, token by token.

    ``first`` is true where a (context, token) pair occurs for the first time: the
    detector scores those positions only, so ``first.sum()`` is its ``tokens_scored``
    and ``(green & first).sum()`` its ``green``. Slower than ``count_green`` (one
    argsort), which is why detection does not go through it.
    """
    if len(hashes) == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    tagged = _tagged_pairs(hashes, key, gamma, width)
    first = np.zeros(len(tagged), dtype=bool)
    first[np.unique(tagged, return_index=True)[1]] = True
    return (tagged & np.uint64(1)).astype(bool), first
