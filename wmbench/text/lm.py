"""Language models behind the generation marks and the perplexity column.

A suite picks one with ``[text] lm = ...``:

* ``"ngram"`` (default): the embedded Kneser-Ney word trigram model
  (:mod:`wmbench.text.ngram`), trained offline on bundled prose and cached;
* a folder path: a causal LM saved with ``transformers`` (``config.json`` plus
  weights and tokenizer files), loaded from disk only: ``local_files_only`` is
  always set, so nothing is ever fetched from a hub.

Both backends offer the same three things: ``generate`` (sampling with an additive
logit bias, which is all a green-list mark needs), ``scoring_tokens`` (the token
strings a detector hashes, from the tokenizer alone: detection never loads model
weights) and ``perplexity``. Models load lazily, once per process.
"""

from __future__ import annotations

import math
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from wmbench.api import Filler
from wmbench.errors import WmbenchError

NGRAM = "ngram"

# Called once per step with the uint64 hashes of the tokens generated so far (the
# prompt excluded, filler included); returns what to add to the next-token logits
# (one value per vocabulary id).
LogitBias = Callable[[np.ndarray], np.ndarray]



class LMError(WmbenchError):
    """A language model that cannot be used: missing folder, unreadable files."""


class LanguageModel(Protocol):
    spec: str

    @property
    def description(self) -> str: ...

    @property
    def vocab_hashes(self) -> np.ndarray: ...

    def scoring_tokens(self, text: str) -> list[str]: ...

    def generate(self, prompt: str, max_new_tokens: int, seed: int, bias: LogitBias | None = None,
                 filler: Filler | None = None) -> str: ...

    def perplexity(self, text: str) -> float: ...


def check_lm_spec(value: str, base_dir: Path) -> str:
    """The canonical spec of ``value`` (a folder becomes an absolute path), or LMError."""
    if value == NGRAM:
        return NGRAM
    folder = (base_dir / value).resolve()
    if not folder.is_dir():
        raise LMError(f"no model folder at {folder} (valid: \"ngram\" or a local transformers model folder)")
    if not (folder / "config.json").is_file():
        raise LMError(f"{folder} is not a transformers model folder: config.json missing")
    return str(folder)


@cache
def load_lm(spec: str) -> LanguageModel:
    """One instance per spec and process; heavy parts load on first use."""
    if spec == NGRAM:
        return NgramBackend()
    return TransformersBackend(check_lm_spec(spec, Path("/")))


class NgramBackend:
    """The embedded word n-gram LM; tokens are the bench's own normalised words."""

    spec = NGRAM

    @cached_property
    def model(self) -> Any:  # NgramLM
        from wmbench.text.corpus import default_lm

        return default_lm()

    @property
    def description(self) -> str:
        return f"embedded word {self.model.order}-gram LM, Kneser-Ney, {self.model.vocab_size:,} words"

    @cached_property
    def vocab_hashes(self) -> np.ndarray:
        from wmbench.text.green import token_hashes

        return token_hashes(self.model.vocab)

    def scoring_tokens(self, text: str) -> list[str]:
        from wmbench.text.tokenize import token_forms

        return token_forms(text)

    @cached_property
    def _renders(self) -> np.ndarray:
        return np.array([bool(w) for w in self.model.surface], dtype=bool)

    def generate(self, prompt: str, max_new_tokens: int, seed: int, bias: LogitBias | None = None,
                 filler: Filler | None = None) -> str:
        """Sample with the n-gram LM. A filler enters the mark's context, not the
        n-gram context: the model has never seen an emoji, so it writes on as if the
        filler were not there (a real LM would be disturbed by it a little)."""
        from wmbench.text.green import token_hashes
        from wmbench.text.ngram import generate_ids, render_parts
        from wmbench.text.tokenize import token_forms

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

    def perplexity(self, text: str) -> float:
        return float(self.model.perplexity(text))


class TransformersBackend:
    """A causal LM from a local transformers folder, run with the CPU torch build.

    Sampling is done here, not by ``model.generate``: one numpy draw per step from
    a seeded generator, so marked and unmarked twins share their random draws
    exactly as with the n-gram LM. Special tokens are never sampled, so every text
    has exactly ``max_new_tokens`` tokens.
    """

    def __init__(self, folder: str) -> None:
        self.spec = folder
        self.folder = Path(folder)

    @cached_property
    def tokenizer(self) -> Any:
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise LMError(f"the transformers package is needed for lm = {self.spec!r}: {exc}") from None
        try:
            return AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        except Exception as exc:
            raise LMError(f"{self.folder}: cannot load the tokenizer: {exc}") from None

    @cached_property
    def model(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(self.folder, local_files_only=True, dtype=torch.float32)
        except Exception as exc:
            raise LMError(f"{self.folder}: cannot load the model: {exc}") from None
        return model.eval()

    @property
    def description(self) -> str:
        config = self.model.config
        params = sum(p.numel() for p in self.model.parameters())
        return f"transformers {config.model_type} from {self.folder} ({params:,} parameters)"

    @cached_property
    def vocab_size(self) -> int:
        """Logit count: the model's vocabulary may be padded beyond the tokenizer's."""
        return max(int(self.model.config.vocab_size), len(self.tokenizer))

    @cached_property
    def vocab_hashes(self) -> np.ndarray:
        from wmbench.text.green import token_hashes

        strings = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        strings += [f"<unused id {i}>" for i in range(len(strings), self.vocab_size)]
        return token_hashes([s if s is not None else "" for s in strings])

    @cached_property
    def _cache_arg(self) -> str:
        """transformers 5 renamed ``past_key_values`` to ``cache``; accept either."""
        import inspect

        return "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    @cached_property
    def _banned(self) -> np.ndarray:
        banned = set(self.tokenizer.all_special_ids) | set(range(len(self.tokenizer), self.vocab_size))
        return np.fromiter(sorted(banned), dtype=np.int64)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def scoring_tokens(self, text: str) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(self._encode(text))

    def _with_bos(self, ids: list[int]) -> list[int]:
        bos = self.tokenizer.bos_token_id
        if bos is not None:
            return [bos, *ids]
        if not ids:
            raise ValueError("empty prompt and the model has no beginning-of-text token")
        return ids

    def generate(self, prompt: str, max_new_tokens: int, seed: int, bias: LogitBias | None = None,
                 filler: Filler | None = None) -> str:
        """Sample ``max_new_tokens`` tokens; a filler is fed to the model like any text."""
        import torch

        rng = np.random.default_rng(seed)
        filler_ids = self._encode(" " + filler.text) if filler else []
        filler_rng = filler.rng() if filler else None
        written: list[int] = []  # generated ids, fillers included
        hashes: list[np.uint64] = []
        context = self._with_bos(self._encode(prompt))
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None)
        if limit is not None:
            context = context[-max(1, int(limit) - max_new_tokens):]
        new: list[int] = []
        past = None
        step_input = torch.tensor([context])
        with torch.no_grad():
            for _ in range(max_new_tokens):
                out = self.model(input_ids=step_input, use_cache=True, **{self._cache_arg: past})
                past = getattr(out, self._cache_arg)
                logits = out.logits[0, -1, :].double().numpy()[: self.vocab_size].copy()
                if bias is not None:
                    logits += bias(np.asarray(hashes, dtype=np.uint64))
                logits[self._banned] = -np.inf
                top = np.max(logits)
                cdf = np.cumsum(np.exp(logits - top))
                choice = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), self.vocab_size - 1)
                new.append(choice)
                step = [choice]
                if filler and filler_rng.random() < filler.rate:
                    step += filler_ids
                written += step
                hashes.extend(self.vocab_hashes[step])
                step_input = torch.tensor([step])
        return self.tokenizer.decode(written, skip_special_tokens=True)

    def perplexity(self, text: str) -> float:
        """exp of the mean next-token loss, over the first context-length tokens."""
        import torch

        ids = self._with_bos(self._encode(text))
        limit = getattr(self.model.config, "max_position_embeddings", None) or 1024
        ids = ids[: int(limit)]
        if len(ids) < 2:
            raise ValueError("no tokens to score")
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids]))
        return math.exp(float(out.loss))


__all__ = ["LMError", "LanguageModel", "LogitBias", "NGRAM", "NgramBackend", "TransformersBackend",
           "check_lm_spec", "load_lm"]
