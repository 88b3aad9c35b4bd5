"""Structure attacks on text: sentences reordered, the text truncated, or diluted in other prose.

They leave every word as it was and change what surrounds it: reordering breaks the
contexts that cross sentence boundaries, truncation leaves fewer tokens to score, and
dilution pulls a whole-document green share towards its base rate. The shared
contract (seeded draws in a fixed order) is in :mod:`wmbench_attacks.text_common`.
"""

from __future__ import annotations

import math
import re
from importlib.resources import files

import numpy as np

from wmbench.api import Token, attack, detokenize, tokenize
from wmbench_attacks.text_common import check_fraction, random_count, word_indices

_TERMINAL = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]+")
_CLOSERS = frozenset("\"')]}\u2019\u201d\u00bb")


def _sentences(tokens: list[Token]) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of the sentences: ending at ``.``/``!``/``?`` (with
    any closing quotes or brackets right after) or at a line break."""
    spans: list[tuple[int, int]] = []
    start = i = 0
    n = len(tokens)
    while i < n:
        t = tokens[i]
        if i > start and "\n" in t.space_before:
            spans.append((start, i))
            start = i
        if not t.is_word and _TERMINAL.fullmatch(t.text):
            j = i + 1
            while j < n and tokens[j].space_before == "" and tokens[j].text and set(tokens[j].text) <= _CLOSERS:
                j += 1
            spans.append((start, j))
            start = i = j
            continue
        i += 1
    if start < n:
        spans.append((start, n))
    return spans


@attack("sentence_shuffle", modality="text", tags={"family": "reorder"}, strengths=(0.25, 0.5, 1.0),
        unit="fraction of sentences moved")
def sentence_shuffle(text: str, strength: float, rng: np.random.Generator) -> str:
    """Move this fraction of the sentences to random places (1.0: every sentence moves).

    The chosen sentences trade places along one random cycle, so each of them lands
    somewhere else while the rest stay put (at least two move when any does). The
    whitespace between sentences, paragraph breaks included, stays where it was.
    No word changes: a bag-of-words mark (``unigram``, ``lexical``) cannot notice;
    a context-hashed one (``kgw``) loses only the pairs across sentence boundaries.
    """
    fraction = check_fraction(strength, "sentence_shuffle")
    tokens = tokenize(text)
    end = tokens[-1:] if tokens and tokens[-1].text == "" else []
    body = tokens[: len(tokens) - len(end)]
    spans = _sentences(body)
    m = len(spans)
    if m < 2:
        return text
    k = random_count(rng, fraction, m)
    if k == 1:
        k = 2
    chosen = rng.permutation(m)[:k]
    placed = list(range(m))  # placed[slot] = sentence shown in that slot
    for j in range(k):
        placed[chosen[(j + 1) % k]] = chosen[j]
    out: list[Token] = []
    for slot, s in enumerate(placed):
        a, b = spans[s]
        out.append(Token(body[a].text, body[spans[slot][0]].space_before))
        out.extend(body[a + 1:b])
    return detokenize(out + end)


@attack("truncate", modality="text", tags={"family": "truncate", "prefix": True}, strengths=(200, 100, 50, 25),
        unit="words kept")
def truncate(text: str, strength: int, rng: np.random.Generator) -> str:
    """Keep only the first N words (and the punctuation right after the last one).

    A text of N words or fewer comes back unchanged. Fewer words means fewer scored
    tokens, so the same green share gives a weaker p-value. ``rng`` is unused.
    """
    if isinstance(strength, bool) or float(strength) != int(strength) or int(strength) < 0:
        raise ValueError(f"truncate: strength must be a whole number of words >= 0, not {strength!r}")
    keep = int(strength)
    tokens = tokenize(text)
    words = word_indices(tokens)
    if len(words) <= keep:
        return text
    if keep == 0:
        return ""
    cut = words[keep - 1] + 1
    while cut < len(tokens) and tokens[cut].text and not tokens[cut].is_word and tokens[cut].space_before == "":
        cut += 1
    return detokenize(tokens[:cut])


# Filler for `dilute`: original plain prose written for this attack (not a sample text),
# everyday topics, one paragraph per string. About 2,800 words: enough to dilute a
# 300-word text to 10 %; longer texts reuse it from the start. It is package data of the
# attacks package itself (attacks/data/) rather than a literal here, so the prose reads and
# diffs as prose, and the attack depends on nothing of wmbench but its public API.
FILLER_FILE = "data/dilute_filler.txt"


def _read_filler() -> tuple[str, ...]:
    """The filler paragraphs, one string each (the file wraps them; blank lines part them)."""
    text = files(__package__ or "wmbench_attacks").joinpath(FILLER_FILE).read_text(encoding="utf-8")
    return tuple(" ".join(block.split()) for block in text.split("\n\n") if block.strip())


FILLER = _read_filler()


def _filler_sentences() -> list[tuple[int, list[Token], int]]:
    """(paragraph index, tokens, word count) of every filler sentence, in order."""
    out = []
    for p, paragraph in enumerate(FILLER):
        tokens = tokenize(paragraph)
        for a, b in _sentences(tokens):
            sentence = [Token(tokens[a].text, "")] + tokens[a + 1:b]
            out.append((p, sentence, sum(t.is_word for t in sentence)))
    return out


_FILLER_SENTENCES = _filler_sentences()
_PARAGRAPH_STARTS = [i for i, s in enumerate(_FILLER_SENTENCES) if i == 0 or s[0] != _FILLER_SENTENCES[i - 1][0]]


def _render(sentences: list[tuple[int, list[Token]]]) -> str:
    """Sentences joined by a space within a paragraph and a blank line between paragraphs."""
    parts: list[str] = []
    for j, (p, tokens) in enumerate(sentences):
        if j:
            parts.append(" " if p == sentences[j - 1][0] else "\n\n")
        parts.append(detokenize(tokens))
    return "".join(parts)


@attack("dilute", modality="text", tags={"family": "dilution"}, strengths=(0.75, 0.5, 0.25, 0.1),
        unit="share of the words that are the text")
def dilute(text: str, strength: float, rng: np.random.Generator) -> str:
    """Copy-paste dilution: embed the text, untouched, in human prose so it is this fraction of the words.

    The filler is plain English written for this attack (everyday topics, not one of
    the bench's sample texts), taken in order from a random paragraph on and cut to the
    exact word count; the text goes in as its own paragraph at a random sentence
    boundary. The original stays a contiguous substring: a detector that scores
    windows can still find it, one that scores the whole document sees the green share
    pulled towards its base rate. Filler beyond its ~2,800 words repeats, which
    adds no new tokens for marks that score each distinct token once.
    """
    share = float(strength)
    if not 0.0 < share <= 1.0 or math.isnan(share):
        raise ValueError(f"dilute: strength must be the original's share of the words, in (0, 1], not {strength!r}")
    n = sum(t.is_word for t in tokenize(text))
    if n == 0 or share == 1.0:
        return text
    needed = round(n * (1.0 - share) / share)
    first = _PARAGRAPH_STARTS[int(rng.random() * len(_PARAGRAPH_STARTS))]
    position = rng.random()
    taken: list[tuple[int, list[Token]]] = []
    total = 0
    j = first
    while total < needed:
        p, tokens, count = _FILLER_SENTENCES[j % len(_FILLER_SENTENCES)]
        p += len(FILLER) * (j // len(_FILLER_SENTENCES))  # a repeat starts a new paragraph
        if total + count > needed:  # cut the last sentence at the exact word count
            words = word_indices(tokens)
            tokens = tokens[: words[needed - total - 1] + 1] + [Token(".", "")]
            count = needed - total
        taken.append((p, tokens))
        total += count
        j += 1
    cut = int(position * (len(taken) + 1)) if taken else 0
    parts = [_render(taken[:cut]), text, _render(taken[cut:])]
    if not parts[0]:
        del parts[0]
    if not parts[-1]:
        del parts[-1]
    return "\n\n".join(parts)


__all__ = ["FILLER", "dilute", "sentence_shuffle", "truncate"]
