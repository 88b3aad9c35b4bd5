"""Frequency-skew text watermarks: ``unigram``, ``kgw`` and ``lexical``.

All three shift word frequencies towards a keyed "green" set and are detected by
counting green tokens (see :mod:`wmbench.text.green`); they differ in how the green
set is chosen and in where the skew comes from:

* ``unigram`` (Zhao et al. 2023): one fixed green list, a fraction ``gamma`` of the
  vocabulary; generation adds ``delta`` to green logits. The purest frequency skew.
* ``kgw`` (Kirchenbauer et al. 2023): the green list is re-drawn at every step from
  a hash of the previous ``width`` tokens and the key.
* ``lexical``: post-hoc marking of human text, no language model: content words with
  synonyms in a real thesaurus are swapped for a green synonym (inflection and case
  kept). Detection scores only words the thesaurus can substitute.

Generation marks write text from a prompt (``generates = True``); their negatives
are unmarked generations from the same prompt with the same sampling draws.
Detection needs the text and the key only, never the model.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import numpy as np

from wmbench.api import Detection, Watermarker, watermarker
from wmbench.text.green import (
    GreenCount,
    context_hashes,
    count_green,
    green_mask,
    green_score,
    key_hash,
    string_hash,
    token_hashes,
)
from wmbench.text.tokenize import detokenize, normalize, token_forms, tokenize


def _detection(count: GreenCount, **extra: Any) -> Detection:
    info: dict[str, Any] = {"tokens_scored": count.tokens_scored, "green": count.green, "gamma": count.gamma,
                            "z": round(count.z, 4), **extra}
    if count.tokens_scored == 0:
        info["reason"] = "too short to score: no token"
    return Detection(score=count.z, p_value=count.p_value, extra=info)


def _prompt_seed(prompt: str) -> int:
    """Sampling seed of a prompt, shared by its marked and unmarked generation."""
    return int.from_bytes(hashlib.sha256(f"wmbench-generation:{prompt}".encode()).digest()[:8], "little")


class _GreenListGeneration(Watermarker):
    """Generation with the embedded n-gram LM, biased towards a keyed green list."""

    modality = "text"
    generates = True
    width: ClassVar[int]
    parameters: ClassVar[dict[str, Any]] = {"gamma": 0.25, "delta": 2.0, "max_new_tokens": 200}

    def __init__(self, gamma: float = 0.25, delta: float = 2.0, max_new_tokens: int = 200) -> None:
        from wmbench.text.corpus import default_lm

        if not 0 < gamma < 1:
            raise ValueError(f"gamma must lie strictly between 0 and 1, got {gamma}")
        self.gamma, self.delta, self.max_new_tokens = float(gamma), float(delta), int(max_new_tokens)
        self.lm = default_lm()
        self.vocab_hashes = token_hashes(self.lm.vocab)

    def _generate(self, prompt: str, key: str | None) -> str:
        from wmbench.text.ngram import generate_ids, render

        prompt_ids = self.lm.encode_text(prompt)
        start = self.lm.order - 1 + len(prompt_ids)
        processor = None
        if key is not None:
            k = key_hash(key)
            masks: dict[int, np.ndarray] = {}

            def processor(history: np.ndarray, logits: np.ndarray) -> np.ndarray:
                # the context of the next token: the last `width` generated tokens
                recent = self.vocab_hashes[history[max(start, len(history) - self.width):]]
                context = context_hashes(np.append(recent, np.uint64(0)), self.width)[-1]
                mask = masks.get(int(context))
                if mask is None:
                    mask = masks[int(context)] = green_mask(context, self.vocab_hashes, k, self.gamma)
                return logits + self.delta * mask

        ids = generate_ids(self.lm, prompt_ids, self.max_new_tokens, np.random.default_rng(_prompt_seed(prompt)),
                           processor)
        return render(self.lm, ids, after=prompt)

    def embed(self, item: str, key: str) -> str:
        return self._generate(item, key)

    def unmarked(self, item: str, key: str) -> str:
        return self._generate(item, None)

    def detect(self, item: str, key: str) -> Detection:
        count = count_green(token_hashes(token_forms(item)), key_hash(key), self.gamma, self.width)
        return _detection(count)


@watermarker
class Unigram(_GreenListGeneration):
    """Unigram green list (fixed, keyed): generation adds delta to green logits."""

    name = "unigram"
    width = 0


@watermarker
class Kgw(_GreenListGeneration):
    """KGW: green list re-seeded from the previous token and the key at every step."""

    name = "kgw"
    width = 1


@watermarker
class Lexical(Watermarker):
    """Lexical: swap content words for keyed green synonyms from a thesaurus (no LM)."""

    name = "lexical"
    modality = "text"
    parameters: ClassVar[dict[str, Any]] = {"gamma": 0.5}

    def __init__(self, gamma: float = 0.5) -> None:
        from wmbench.text.thesaurus import load_thesaurus

        if not 0 < gamma < 1:
            raise ValueError(f"gamma must lie strictly between 0 and 1, got {gamma}")
        self.gamma = float(gamma)
        self.thesaurus = load_thesaurus()

    def _green(self, words: list[str], k: np.uint64) -> np.ndarray:
        hashes = token_hashes([normalize(w) for w in words])
        return green_score(np.zeros(len(hashes), dtype=np.uint64), hashes, k) < self.gamma

    def embed(self, item: str, key: str) -> str:
        k = key_hash(key)
        tokens = tokenize(item)
        out = list(tokens)
        for i, token in enumerate(tokens):
            if not token.is_word:
                continue
            options = self.thesaurus.substitutes(token.text)
            if not options or self._green([token.text], k)[0]:
                continue
            green = self._green(options, k)
            if green.any():
                out[i] = type(token)(options[int(np.argmax(green))], token.space_before)
        return detokenize(out)

    def detect(self, item: str, key: str) -> Detection:
        words = [t.text for t in tokenize(item) if t.is_word]
        scorable = [normalize(w) for w in words if self.thesaurus.substitutes(w)]
        hashes = np.asarray([string_hash(w) for w in dict.fromkeys(scorable)], dtype=np.uint64)
        count = count_green(hashes, key_hash(key), self.gamma, width=0)
        return _detection(count, words=len(words), substitutable=len(scorable), thesaurus=self.thesaurus.name)
