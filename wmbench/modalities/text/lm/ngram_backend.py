"""The embedded word n-gram LM (``lm = "ngram"``) behind the :class:`LanguageModel` protocol.

The model itself lives in :mod:`wmbench.modalities.text.ngram`; this is only the glue
that gives it the same ``generate``/``complete``/``perplexity`` calls as a
transformers model, so the marks never ask which backend they run on.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from wmbench.modalities.text.lm.base import NGRAM, LogitBias, batch_rows

if TYPE_CHECKING:
    from wmbench.api import Filler


class NgramBackend:
    """The embedded word n-gram LM; tokens are the bench's own normalised words."""

    spec = NGRAM

    @cached_property
    def model(self) -> Any:  # NgramLM
        from wmbench.modalities.text.corpus import default_lm

        return default_lm()

    @property
    def description(self) -> str:
        return f"embedded word {self.model.order}-gram LM, Kneser-Ney, {self.model.vocab_size:,} words"

    @cached_property
    def vocab_hashes(self) -> np.ndarray:
        from wmbench.modalities.text.green import token_hashes

        return token_hashes(self.model.vocab)

    def scoring_tokens(self, text: str) -> list[str]:
        from wmbench.modalities.text.tokenize import token_forms

        return token_forms(text)

    @cached_property
    def _renders(self) -> np.ndarray:
        return np.array([bool(w) for w in self.model.surface], dtype=bool)

    def generate(self, prompt: str, max_new_tokens: int, seed: int, bias: LogitBias | None = None,
                 filler: Filler | None = None) -> str:
        """Sample with the n-gram LM. A filler enters the mark's context, not the
        n-gram context: the model has never seen an emoji, so it writes on as if the
        filler were not there (a real LM would be disturbed by it a little)."""
        from wmbench.modalities.text.green import token_hashes
        from wmbench.modalities.text.ngram_generate import generate_ids, render_parts
        from wmbench.modalities.text.tokenize import token_forms

        prompt_ids = self.model.encode_text(prompt)
        start = self.model.order - 1 + len(prompt_ids)  # history = <s> pads, prompt, new ids
        hashes: list[np.uint64] = []  # generated tokens as the mark's context sees them
        filled: set[int] = set()  # positions followed by the filler
        filler_hashes = list(token_hashes(token_forms(filler.text))) if filler else []
        filler_rng = filler.rng() if filler else None

        seen = 0

        def catch_up(new: np.ndarray) -> None:
            nonlocal seen
            for position in range(seen, len(new)):
                hashes.append(self.vocab_hashes[new[position]])
                if filler and self._renders[new[position]] and filler_rng.random() < filler.rate:
                    hashes.extend(filler_hashes)
                    filled.add(position)
            seen = len(new)

        def processor(history: np.ndarray, logits: np.ndarray) -> np.ndarray:
            catch_up(history[start:])
            return logits if bias is None else logits + bias(np.asarray(hashes, dtype=np.uint64))

        use_processor = bias is not None or filler is not None
        ids = generate_ids(self.model, prompt_ids, max_new_tokens, np.random.default_rng(seed),
                           processor if use_processor else None)
        if filler:
            catch_up(ids)
        parts = render_parts(self.model, ids, after=prompt)
        return "".join(part + (" " + filler.text if i in filled else "") for i, part in enumerate(parts))

    def generate_batch(self, prompts: Sequence[str], max_new_tokens: int, seeds: Sequence[int],
                       biases: Sequence[LogitBias | None] | None = None,
                       fillers: Sequence[Filler | None] | None = None) -> list[str]:
        """Row by row: an n-gram step costs microseconds, batching gains nothing."""
        rows = batch_rows(prompts, seeds, biases, fillers)
        return [self.generate(p, max_new_tokens, s, b, f) for p, s, b, f in rows]

    def complete(self, prompt: str, max_new_tokens: int, seed: int, stop: str | None = "\n",
                 temperature: float = 1.0) -> str:
        """A continuation of ``prompt``, cut before the first ``stop``."""
        from wmbench.modalities.text.ngram_generate import generate_ids, render_parts

        ids = generate_ids(self.model, self.model.encode_text(prompt), max_new_tokens, np.random.default_rng(seed),
                           temperature=temperature)
        text = "".join(render_parts(self.model, ids, after=prompt))
        return text.split(stop, 1)[0] if stop else text

    def complete_batch(self, prompts: Sequence[str], max_new_tokens: int | Sequence[int], seeds: Sequence[int],
                       stop: str | None = "\n", temperature: float = 1.0) -> list[str]:
        limits = [int(max_new_tokens)] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        return [self.complete(p, n, s, stop, temperature) for p, n, s in zip(prompts, limits, seeds, strict=True)]

    def perplexity(self, text: str) -> float:
        return float(self.model.perplexity(text))
