"""Frequency-skew text watermarks: ``unigram``, ``kgw`` and ``lexical``.

All three shift word frequencies towards a keyed "green" set and are detected by
counting green tokens (see :mod:`wmbench.modalities.text.green`); they differ in how the green
set is chosen and in where the skew comes from:

* ``unigram`` (Zhao et al. 2023): one fixed green list, a fraction ``gamma`` of the
  vocabulary; generation adds ``delta`` to green logits. The purest frequency skew.
* ``kgw`` (Kirchenbauer et al. 2023): the green list is re-drawn at every step from
  a hash of the previous ``width`` tokens and the key.
* ``lexical``: post-hoc marking of human text, no language model: content words with
  synonyms in a real thesaurus are swapped for a green synonym (inflection and case
  kept). Detection scores only words the thesaurus can substitute.

Every mark takes ``normalize``: when true the detector first strips invisible format
characters and maps look-alike letters back to Latin (:mod:`wmbench.modalities.text.confusables`),
undoing the ``homoglyph`` and ``zero_width`` attacks; a suite runs a mark both ways
to show what that normalisation is worth.

Generation marks write text from a prompt with the suite's LM (``generates = True``); their negatives
are unmarked generations from the same prompt with the same sampling draws.
Detection needs the text and the key only, never the model. ``explain`` and
``explain_tokens`` give detection's verdict token by token (the report's text viewer):
the same tokens and hashes, counted by :func:`wmbench.modalities.text.green.explain_green`.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, NamedTuple

import numpy as np

from wmbench.api import Detection, Filler, Watermarker, watermarker
from wmbench.modalities.text.green import (
    GreenCount,
    context_hashes,
    count_green,
    explain_green,
    green_mask,
    green_score,
    key_hash,
    string_hash,
    token_hashes,
)
from wmbench.modalities.text.confusables import skeleton
from wmbench.modalities.text.lm import NGRAM, LogitBias, NgramBackend, load_lm
from wmbench.modalities.text.tokenize import detokenize, normalize, tokenize


def _detection(count: GreenCount, **extra: Any) -> Detection:
    info: dict[str, Any] = {"tokens_scored": count.tokens_scored, "green": count.green, "gamma": count.gamma,
                            "z": round(count.z, 4), **extra}
    if count.tokens_scored == 0:
        info["reason"] = "too short to score: no token"
    return Detection(score=count.z, p_value=count.p_value, extra=info)


class Explained(NamedTuple):
    """One piece of a text as a detector scored it (see ``explain_tokens``)."""

    text: str  # the piece as it appears in the item; the pieces join back to the item
    form: str | None  # the token the detector hashed; None for whitespace and unscored words
    green: bool | None  # None: not a scored token
    counted: bool  # False for a repeat of a (context, token) pair already counted: not scored again
    context: str | None = None  # kgw: the token before it (None: no context, or the start of the text)


def _spans(text: str) -> tuple[list[tuple[int, int]], list[Any]]:
    """(start, end) in ``text`` of every non-empty token of ``tokenize(text)``, and the tokens."""
    spans, tokens, pos = [], [], 0
    for t in tokenize(text):
        pos += len(t.space_before)
        if t.text:
            spans.append((pos, pos + len(t.text)))
            tokens.append(t)
        pos += len(t.text)
    return spans, tokens


def _origins(item: str, text: str) -> list[int] | None:
    """Where each character of ``text`` (``item`` or its skeleton) came from in ``item``.

    ``skeleton`` maps a character to itself, to one Latin letter or to nothing, so the
    characters it keeps are in order. None when ``text`` is the item itself.
    """
    if text is item or text == item:
        return None
    kept = [i for i, c in enumerate(item) if skeleton(c)]
    if len(kept) != len(text):
        raise ValueError("cannot align the normalised text with the item")
    return kept + [len(item)]


def _explained(item: str, text: str, spans: list[tuple[int, int]], forms: list[str], hashes: np.ndarray,
               key: str, gamma: float, width: int) -> list[Explained]:
    """Pieces of ``item`` with the verdict of ``explain_green`` on each scored token.

    ``spans`` are in ``text`` (the item, or its skeleton when the mark normalises) and
    line up with ``forms`` and ``hashes``, the detector's own tokens.
    """
    green, first = explain_green(hashes, key_hash(key), gamma, width)
    origins = _origins(item, text)
    out: list[Explained] = []
    cursor = 0
    for k, (start, end) in enumerate(spans):
        if origins is not None:
            start, end = origins[start], (origins[end - 1] + 1 if end > start else origins[start])
        start = max(start, cursor)
        end = max(end, start)
        if start > cursor:
            out.append(Explained(item[cursor:start], None, None, False))
        context = forms[k - 1] if width and k else None
        out.append(Explained(item[start:end], forms[k], bool(green[k]), bool(first[k]), context))
        cursor = end
    if cursor < len(item):
        out.append(Explained(item[cursor:], None, None, False))
    return out


def _as_pairs(pieces: list[Explained]) -> list[tuple[str, bool | None]]:
    """explain's form: a repeated pair is not scored by the detector, so it counts as unscored."""
    return [(p.text, p.green if p.counted else None) for p in pieces]


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
                if len(masks) >= 256:  # a 262k-token vocabulary: keep at most 256 boolean masks
                    masks.clear()
                mask = masks[int(context)] = green_mask(context, vocab_hashes, k, self.gamma)
            return self.delta * mask

        return bias

    def embed(self, item: str, key: str, filler: Filler | None = None) -> str:
        return self.lm.generate(item, self.max_new_tokens, _prompt_seed(item), self._bias(key), filler)

    def unmarked(self, item: str, key: str, filler: Filler | None = None) -> str:
        return self.lm.generate(item, self.max_new_tokens, _prompt_seed(item), None, filler)

    def embed_pair(self, item: str, key: str, filler: Filler | None = None) -> tuple[str, str]:
        """``(embed(item, key), unmarked(item, key))`` generated together in one batch."""
        return self.embed_pairs([item], key, [filler])[0]

    def embed_pairs(self, items: list[str], key: str,
                    fillers: list[Filler | None] | None = None) -> list[tuple[str, str]]:
        """Marked and unmarked twins of several prompts (or fillers), all rows in one batch.

        Each row keeps its own seeded draws, so the texts are those ``embed`` and
        ``unmarked`` give one at a time, up to the float rounding of batched matrix
        products (see ``TransformersBackend``); with the n-gram LM they are identical.
        """
        fillers = [None] * len(items) if fillers is None else list(fillers)
        prompts = [p for item in items for p in (item, item)]
        texts = self.lm.generate_batch(prompts, self.max_new_tokens, [_prompt_seed(p) for p in prompts],
                                       [self._bias(key), None] * len(items),
                                       [f for filler in fillers for f in (filler, filler)])
        return [(texts[2 * i], texts[2 * i + 1]) for i in range(len(items))]

    def detect(self, item: str, key: str) -> Detection:
        text = skeleton(item) if self.normalize else item
        count = count_green(token_hashes(self.lm.scoring_tokens(text)), key_hash(key), self.gamma, self.width)
        return _detection(count)

    def explain(self, item: str, key: str) -> list[tuple[str, bool | None]]:
        """(piece of the item, green) in order; None for whitespace and pairs not scored.

        Green pieces count exactly ``detect``'s ``green``, scored ones its ``tokens_scored``.
        """
        return _as_pairs(self.explain_tokens(item, key))

    def explain_tokens(self, item: str, key: str) -> list[Explained]:
        """The LM's scoring tokens of ``item`` with their verdicts, as detection counts them."""
        text = skeleton(item) if self.normalize else item
        forms = self.lm.scoring_tokens(text)
        spans = self._token_spans(text, len(forms))
        if spans is None:  # a slow tokenizer has no offsets: decoded token by token instead
            pieces = [self.lm.tokenizer.convert_tokens_to_string([f]) for f in forms]
            green, first = explain_green(token_hashes(forms), key_hash(key), self.gamma, self.width)
            return [Explained(p, f, bool(g), bool(c), forms[k - 1] if self.width and k else None)
                    for k, (p, f, g, c) in enumerate(zip(pieces, forms, green, first))]
        return _explained(item, text, spans, forms, token_hashes(forms), key, self.gamma, self.width)

    def _token_spans(self, text: str, count: int) -> list[tuple[int, int]] | None:
        """Where each scoring token lies in ``text``: the bench's word tokens, or a tokenizer's offsets."""
        if isinstance(self.lm, NgramBackend):
            spans = _spans(text)[0]
        else:
            try:
                encoded = self.lm.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
                spans = [(int(a), int(b)) for a, b in encoded["offset_mapping"]]
            except (NotImplementedError, KeyError, TypeError, ValueError):
                return None
        return spans if len(spans) == count else None


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
        from wmbench.modalities.text.thesaurus import load_thesaurus

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

    def _scored(self, text: str) -> tuple[int, list[tuple[int, int]], list[str]]:
        """The number of words of ``text``, and the spans and forms of the words the
        thesaurus can substitute: the only ones detection scores."""
        spans, tokens = _spans(text)
        words = [(span, t.text) for span, t in zip(spans, tokens) if t.is_word]
        scorable = [(span, normalize(w)) for span, w in words if self.thesaurus.substitutes(w)]
        return len(words), [span for span, _ in scorable], [form for _, form in scorable]

    def detect(self, item: str, key: str) -> Detection:
        words, _, scorable = self._scored(skeleton(item) if self.normalize else item)
        hashes = np.asarray([string_hash(w) for w in dict.fromkeys(scorable)], dtype=np.uint64)
        count = count_green(hashes, key_hash(key), self.gamma, width=0)
        return _detection(count, words=words, substitutable=len(scorable), thesaurus=self.thesaurus.name)

    def explain(self, item: str, key: str) -> list[tuple[str, bool | None]]:
        """(piece of the item, green) in order; None for everything not scored (words
        without a substitute, whitespace, a word already counted)."""
        return _as_pairs(self.explain_tokens(item, key))

    def explain_tokens(self, item: str, key: str) -> list[Explained]:
        """The substitutable words of ``item`` with their verdicts, as detection counts them."""
        text = skeleton(item) if self.normalize else item
        _, spans, forms = self._scored(text)
        return _explained(item, text, spans, forms, token_hashes(forms), key, self.gamma, width=0)
