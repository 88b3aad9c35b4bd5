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

Every mark takes ``normalize``: when true the detector first strips invisible format
characters and maps look-alike letters back to Latin (:mod:`wmbench.text.confusables`),
undoing the ``homoglyph`` and ``zero_width`` attacks; a suite runs a mark both ways
to show what that normalisation is worth.

Generation marks write text from a prompt with the suite's LM (``generates = True``); their negatives
are unmarked generations from the same prompt with the same sampling draws.
Detection needs the text and the key only, never the model.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import numpy as np

from wmbench.api import Detection, Filler, Watermarker, watermarker
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
from wmbench.text.confusables import skeleton
from wmbench.text.lm import NGRAM, LogitBias, load_lm
from wmbench.text.tokenize import detokenize, normalize, tokenize


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
    """Generation with the suite's LM, biased towards a keyed green list.

    ``lm`` is ``"ngram"`` (the embedded model) or a local transformers folder; a
    suite's ``[text] lm`` fills it in. Detection hashes the LM's own tokens, so it
    needs that LM's tokenizer but never its weights.
    """

    modality = "text"
    generates = True
    accepts_filler = True
    width: ClassVar[int]
    parameters: ClassVar[dict[str, Any]] = {"gamma": 0.25, "delta": 2.0, "max_new_tokens": 200, "lm": NGRAM,
                                            "normalize": False}

    def __init__(self, gamma: float = 0.25, delta: float = 2.0, max_new_tokens: int = 200,
                 lm: str = NGRAM, normalize: bool = False) -> None:
        if not 0 < gamma < 1:
            raise ValueError(f"gamma must lie strictly between 0 and 1, got {gamma}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.gamma, self.delta, self.max_new_tokens = float(gamma), float(delta), int(max_new_tokens)
        self.lm = load_lm(lm)
        self.normalize = bool(normalize)

    def _bias(self, key: str) -> LogitBias:
        """delta on the green ids of the context the next token will be scored in."""
        k = key_hash(key)
        vocab_hashes = self.lm.vocab_hashes
        masks: dict[int, np.ndarray] = {}

        def bias(generated: np.ndarray) -> np.ndarray:
            # `generated`: hashes of the tokens written so far. The detector sees only
            # the generated text: its context is the last `width` of them, or the
            # start marker at the beginning
            recent = generated[max(0, len(generated) - self.width):]
            context = context_hashes(np.append(recent, np.uint64(0)), self.width)[-1]
            mask = masks.get(int(context))
            if mask is None:
                mask = masks[int(context)] = self.delta * green_mask(context, vocab_hashes, k, self.gamma)
            return mask

        return bias

    def embed(self, item: str, key: str, filler: Filler | None = None) -> str:
        return self.lm.generate(item, self.max_new_tokens, _prompt_seed(item), self._bias(key), filler)

    def unmarked(self, item: str, key: str, filler: Filler | None = None) -> str:
        return self.lm.generate(item, self.max_new_tokens, _prompt_seed(item), None, filler)

    def detect(self, item: str, key: str) -> Detection:
        text = skeleton(item) if self.normalize else item
        count = count_green(token_hashes(self.lm.scoring_tokens(text)), key_hash(key), self.gamma, self.width)
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
    parameters: ClassVar[dict[str, Any]] = {"gamma": 0.5, "normalize": False}

    def __init__(self, gamma: float = 0.5, normalize: bool = False) -> None:
        from wmbench.text.thesaurus import load_thesaurus

        if not 0 < gamma < 1:
            raise ValueError(f"gamma must lie strictly between 0 and 1, got {gamma}")
        self.gamma = float(gamma)
        self.normalize = bool(normalize)
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
        words = [t.text for t in tokenize(skeleton(item) if self.normalize else item) if t.is_word]
        scorable = [normalize(w) for w in words if self.thesaurus.substitutes(w)]
        hashes = np.asarray([string_hash(w) for w in dict.fromkeys(scorable)], dtype=np.uint64)
        count = count_green(hashes, key_hash(key), self.gamma, width=0)
        return _detection(count, words=len(words), substitutable=len(scorable), thesaurus=self.thesaurus.name)
