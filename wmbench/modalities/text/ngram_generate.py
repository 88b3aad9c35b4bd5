"""Sampling from the n-gram LM and rendering its word ids back into readable text.

Kept apart from the model (:mod:`wmbench.modalities.text.ngram_model`) because it is
the part the marks drive: ``generate_ids`` takes the per-step ``logits_processor``
through which a green-list mark adds its bias, and ``render_parts`` gives one string
per id so a caller can insert text after a given token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from wmbench.modalities.text.ngram_model import BOS_ID, EOS_ID, UNK_ID, NgramLM
from wmbench.modalities.text.tokenize import tokenize

LogitsProcessor = Callable[[np.ndarray, np.ndarray], np.ndarray]


# Spacing when turning generated words back into text: what hugs the previous token,
# and what the next token hugs.
NO_SPACE_BEFORE = frozenset(",.;:!?)]}%/\u2026\u2019\u201d\u00bb") | {"...", "--"}
NO_SPACE_AFTER = frozenset("([{$#@/\u201c\u2018\u00ab")
_QUOTES = ('"', "'")  # straight quotes: opening or closing by parity
_SENTENCE_END = frozenset(".!?\u2026") | {"...", "!!", "??"}


def render(lm: NgramLM, ids: Iterable[int], after: str = "") -> str:
    """Text for generated ``ids`` that reads naturally when appended to ``after``."""
    return "".join(render_parts(lm, ids, after))


def render_parts(lm: NgramLM, ids: Iterable[int], after: str = "") -> list[str]:
    """``render`` as one string per id (empty for an id that renders as nothing).

    Words take their most common surface form from training (so "i" comes out as
    "I" and "python" as "Python") and are capitalised at the start of a sentence;
    punctuation hugs the word before it, opening brackets the word after, and
    straight quotes alternate between opening and closing. A space is added wherever
    two glued tokens would otherwise tokenize as one, so ``encode_text`` of the
    result gives back ``ids`` (words outside the vocabulary aside). One part per id
    lets a caller insert text after a given token.
    """
    tail = [t.text for t in tokenize(after) if t.text]
    last = tail[-1] if tail else ""
    glued_to = last if after and not after[-1].isspace() else ""  # token the next one touches
    need_space = bool(glued_to) and last not in NO_SPACE_AFTER
    sentence_start = last == "" or last in _SENTENCE_END
    quote_open = {q: after.count(q) % 2 == 1 for q in _QUOTES}
    parts: list[str] = []
    for i in ids:
        word = lm.surface[int(i)]
        if not word:
            parts.append("")
            continue
        if word in quote_open:
            opening = not quote_open[word]
            quote_open[word] = opening
            space = need_space and opening
            need_space = not opening
        else:
            if word in NO_SPACE_BEFORE:
                space = False
            else:
                space = need_space
                if sentence_start and word[:1].islower():
                    word = word[:1].upper() + word[1:]
            need_space = word not in NO_SPACE_AFTER
            if word in _SENTENCE_END:
                sentence_start = True
            elif word[:1].isalnum():
                sentence_start = False
        # Two tokens written without a space must still read back as two tokens
        # ("." then "..." would become "...."), or detectors would see other words.
        if not space and glued_to and len(tokenize(glued_to + word)) != 2:
            space = True
        parts.append((" " if space else "") + word)
        glued_to = word
    return parts


def generate_ids(lm: NgramLM, prompt_ids: Sequence[int] | np.ndarray, max_new_tokens: int,
                 rng: np.random.Generator, logits_processor: LogitsProcessor | None = None,
                 temperature: float = 1.0, top_k: int | None = None,
                 stop_at_eos: bool = False) -> np.ndarray:
    """Sample up to ``max_new_tokens`` ids after ``prompt_ids``; see ``generate``."""
    if max_new_tokens < 0:
        raise ValueError("max_new_tokens must be >= 0")
    if temperature < 0:
        raise ValueError("temperature must be >= 0 (0 means greedy)")
    if top_k is not None and top_k < 1:
        raise ValueError("top_k must be >= 1")
    pad = lm.order - 1
    prompt = np.asarray(prompt_ids, dtype=np.int64)
    buf = np.empty(pad + len(prompt) + max_new_tokens, dtype=np.int64)
    buf[:pad] = BOS_ID
    buf[pad:pad + len(prompt)] = prompt
    length = pad + len(prompt)
    banned = [UNK_ID, BOS_ID] + ([] if stop_at_eos else [EOS_ID])
    v = lm.vocab_size
    for _ in range(max_new_tokens):
        logits = lm.next_logprobs(buf[:length])
        if logits_processor is not None:
            view = buf[:length]
            view.flags.writeable = False
            logits = np.array(logits_processor(view, logits), dtype=np.float64)
            if logits.shape != (v,):
                raise ValueError(f"logits_processor returned shape {logits.shape}, expected ({v},)")
        logits[banned] = -np.inf
        if top_k is not None and top_k < v:
            cut = np.partition(logits, v - top_k)[v - top_k]
            logits[logits < cut] = -np.inf
        top = np.max(logits)
        if not np.isfinite(top):
            raise ValueError("no token left to sample (every logit is -inf or nan)")
        if temperature == 0:
            choice = int(np.argmax(logits))
        else:
            cdf = np.cumsum(np.exp((logits - top) / temperature))
            choice = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            choice = min(choice, v - 1)
        if choice == EOS_ID:
            break
        buf[length] = choice
        length += 1
    return buf[pad + len(prompt):length].copy()


def generate(lm: NgramLM, prompt: str, max_new_tokens: int, rng: np.random.Generator,
             logits_processor: LogitsProcessor | None = None, temperature: float = 1.0,
             top_k: int | None = None, stop_at_eos: bool = False) -> str:
    """Continue ``prompt`` by sampling the LM; returns only the continuation text.

    ``prompt + generate(...)`` is the whole document (the continuation starts with a
    space when one is due). Exactly ``max_new_tokens`` tokens are sampled unless
    ``stop_at_eos`` is set, in which case sampling ends early at ``</s>`` (end of
    paragraph), which is not rendered. ``<unk>`` and ``<s>`` are never sampled (nor
    ``</s>`` when ``stop_at_eos`` is off).

    ``logits_processor(context_ids, logits) -> logits`` is called once per step with
    a read-only view of the ``<s>``-padded history (``order - 1`` pads, the prompt's
    ids, the ids generated so far) and the LM's log-probabilities; a watermark adds
    its bias to the green ids and returns the array. Then banned ids are masked,
    ``top_k`` keeps the k largest logits, ``temperature`` divides them (0 = greedy),
    and one id is drawn with ``rng`` (a single ``rng.random()`` per step, so a seeded
    generator gives the same text every time).
    """
    ids = generate_ids(lm, lm.encode_text(prompt), max_new_tokens, rng, logits_processor,
                       temperature, top_k, stop_at_eos)
    return render(lm, ids, after=prompt)
