"""Paraphrase with a local language model: a few-shot prompt, sentence by sentence.

The attack LeCun's remark is about, run offline: a frequency-skew mark lives in
the choice of tokens, and a model that says each sentence again in its own words
draws them afresh. ``fewshot_paraphrase`` uses an *unmarked* local model, Gemma 3
270M by default (``lm = "gemma3-270m"``, the extra ``wmbench[gemma]``). It is a
base model, not an instruction-tuned one, so it is not asked but shown: the prompt
holds a few original -> rewrite pairs written for this module, then the sentence,
and the model's continuation up to the end of the line is the rewrite. Sentences
are rewritten independently, all of a text in one batch, and joined with the
original separators (spaces, line breaks) kept.

Strength is the fraction of sentences rewritten, weak -> strong ``(0.5, 1.0)``,
chosen by the cell's ``rng``; the others are copied. A small base model keeps the
meaning only roughly, and now and then says something else altogether: the
similarity column shows how faithful the rewrite was. A sentence whose rewrite
comes back empty is kept as it was.

Parameters: ``lm`` (``"gemma3-270m"``, ``"ngram"`` or a local transformers
folder), ``temperature`` (sampling temperature, 0 = greedy) and ``prompt`` (the
few-shot preamble, with ``{sentence}`` where the sentence goes). Without the
model's packages the cells are skipped, with the install command as the reason.
"""

from __future__ import annotations

import re

import numpy as np

from wmbench.api import LanguageModelUnavailable, SkipCell, attack, language_model

FEW_SHOT_PROMPT = """Each sentence is rewritten in other words, with the same meaning.

Original: The meeting was put off because half of the committee was ill.
Rewrite: Since half the committee members were sick, the meeting was postponed.

Original: She walked to the station every morning, even when it rained.
Rewrite: Every morning, rain or shine, she went to the station on foot.

Original: The new bridge will cut the trip across the river to ten minutes.
Rewrite: Once the new bridge opens, crossing the river will take only ten minutes.

Original: Most of the old letters were lost when the cellar flooded.
Rewrite: When water filled the cellar, the greater part of the old letters was destroyed.

Original: He asked whether anyone had seen his keys.
Rewrite: He wanted to know if somebody had noticed where his keys were.

Original: {sentence}
Rewrite:"""

# A sentence ends at . ! or ? (a closing quote or bracket may follow) before
# whitespace; a line break always ends one. The separators are kept as they are.
_BREAK = re.compile(r"((?:(?<=[.!?])|(?<=[.!?][\"'\u201d\u2019)\]]))\s+|[ \t]*\n\s*)")


def sentences(text: str) -> list[str]:
    """``text`` cut into pieces that join back to it: sentences at even indices,
    the whitespace between them at odd ones."""
    return _BREAK.split(text)


@attack("fewshot_paraphrase", modality="text", tags={"family": "paraphrase", "replayable": False},
        strengths=(0.5, 1.0),
        parameters={"lm": "gemma3-270m", "temperature": 0.7, "prompt": FEW_SHOT_PROMPT},
        unit="fraction of sentences")
def fewshot_paraphrase(text: str, strength: float, rng: np.random.Generator, lm: str = "gemma3-270m",
                       temperature: float = 0.7, prompt: str = FEW_SHOT_PROMPT) -> str:
    """Rewrite this fraction of the sentences with a local base LM prompted by examples."""
    if not 0 <= strength <= 1:
        raise ValueError(f"fewshot_paraphrase: strength must be a fraction in [0, 1], not {strength!r}")
    if temperature < 0:
        raise ValueError(f"fewshot_paraphrase: temperature must be >= 0, not {temperature!r}")
    if "{sentence}" not in prompt:
        raise ValueError("fewshot_paraphrase: prompt must contain {sentence}, where the sentence goes")
    pieces = sentences(text)
    candidates = [i for i in range(0, len(pieces), 2) if re.search(r"\w", pieces[i])]
    chosen = sorted(candidates[j] for j in rng.permutation(len(candidates))[: int(round(strength * len(candidates)))])
    seeds = [int(s) for s in rng.integers(0, 2**63, size=len(chosen))]  # drawn even if nothing is chosen
    if not chosen:
        return text
    try:
        model = language_model(lm)
    except LanguageModelUnavailable as exc:
        raise SkipCell(str(exc)) from None
    originals = [pieces[i].strip() for i in chosen]
    limits = [2 * len(model.scoring_tokens(s)) + 8 for s in originals]  # a rewrite may be twice as long
    rewrites = model.complete_batch([prompt.replace("{sentence}", s) for s in originals], limits, seeds,
                                    stop="\n", temperature=float(temperature))
    out = list(pieces)
    for i, original, rewrite in zip(chosen, originals, rewrites):
        rewrite = rewrite.strip()
        out[i] = pieces[i].replace(original, rewrite) if rewrite else pieces[i]
    return "".join(out)
