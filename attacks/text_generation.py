"""Text attacks that use a language model: span regeneration and the emoji attack.

Both are written against ``wmbench.api`` only. ``lm_regenerate`` asks an *unmarked*
LM to rewrite part of the text; ``emoji`` is a generation-time attack: the marked
model is made to write an emoji after words (``filler``), which this module then
deletes, so the green lists the mark chose were keyed on contexts the detector
never sees.
"""

from __future__ import annotations

import re

import numpy as np

from wmbench.api import Token, attack, detokenize, language_model, tokenize

SPAN_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
EMOJI = "\U0001F642"  # slightly smiling face


def _spans(tokens: list[Token], size: int) -> list[tuple[int, int]]:
    """Consecutive runs of ``size`` non-empty tokens (the last one may be shorter)."""
    positions = [i for i, t in enumerate(tokens) if t.text]
    return [(positions[a], positions[min(a + size, len(positions)) - 1] + 1) for a in range(0, len(positions), size)]


@attack("lm_regenerate", modality="text", strengths=SPAN_FRACTIONS,
        tags={"family": "regeneration", "replayable": False},
        parameters={"lm": "ngram", "span": 12}, unit="fraction of spans")
def lm_regenerate(text: str, strength: float, rng: np.random.Generator, lm: str = "ngram", span: int = 12) -> str:
    """Rewrite this fraction of the text's spans (``span`` tokens each) with an unmarked LM.

    Each chosen span is replaced by as many tokens sampled from the LM, continuing
    the text written so far; the spans left alone are copied. The LM is the
    embedded n-gram model unless ``lm`` names a local transformers folder. A strong
    paraphraser keeps the meaning; this one does not: the similarity column shows
    how much of it survives.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"lm_regenerate: strength must be a fraction in [0, 1], not {strength!r}")
    if span < 1:
        raise ValueError(f"lm_regenerate: span must be at least 1 token, not {span!r}")
    tokens = tokenize(text)
    spans = _spans(tokens, int(span))
    chosen = set(rng.permutation(len(spans))[: int(round(strength * len(spans)))].tolist())
    if not chosen:
        return text
    model = language_model(lm)
    out = detokenize(tokens[: spans[0][0]]) if spans else text
    for i, (a, b) in enumerate(spans):
        if i in chosen:
            size = sum(1 for t in tokens[a:b] if t.text)
            out += model.generate(out, size, int(rng.integers(2**63)))
        else:
            out += detokenize(tokens[a:b])
    tail = detokenize(tokens[spans[-1][1]:]) if spans else ""
    return out + tail


@attack("emoji", modality="text", tags={"family": "generation-time"}, strengths=(0.5, 1.0), filler=EMOJI,
        unit="fraction of tokens")
def emoji(text: str, strength: float, rng: np.random.Generator) -> str:
    """Generation-time: the model writes an emoji after this fraction of tokens; delete them.

    The runner generates the marked (and unmarked) text with the filler, then calls
    this function, which removes every filler it finds, with the space before it.
    Marks that are not generated (lexical) skip this attack. A subword model may
    write the next word straight after the emoji ("dawn 🙂the"): there the emoji
    gives way to a space, so the words stay apart.
    """
    text = _GLUED.sub(" ", text)
    return text.replace(" " + EMOJI, "").replace(EMOJI, "")


_GLUED = re.compile(" ?" + EMOJI + r"(?=\w)")  # an emoji with a word right after it
