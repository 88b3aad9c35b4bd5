"""Text quality per cell: perplexity under the suite's LM, semantic similarity.

Both backends load once per worker process. Each function returns ``(value,
reason)``: when a value cannot be measured (backend missing, empty text) it is
None and the reason says why, so the cell can show it instead of a number.
"""

from __future__ import annotations

import warnings
from functools import cache

from wmbench.errors import WmbenchError


@cache
def _similarity_model():  # noqa: ANN202 - (SimilarityModel | None, reason it is missing | None)
    from wmbench.modalities.text.similarity import load_similarity

    try:
        return load_similarity(), None
    except WmbenchError as exc:
        warnings.warn(f"semantic similarity not measured: {exc}", stacklevel=2)
        return None, str(exc)


def perplexity(text: str, lm: str = "ngram") -> tuple[float | None, str | None]:
    """Perplexity under the LM named by ``lm`` (see :mod:`wmbench.modalities.text.lm`)."""
    from wmbench.modalities.text.lm import load_lm

    if not text.strip():
        return None, "empty text"
    try:
        return float(load_lm(lm).perplexity(text)), None
    except ValueError as exc:  # e.g. a text of one token under a model with no BOS
        return None, str(exc)


def similarity(reference: str, text: str) -> tuple[float | None, str | None]:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings."""
    if reference == text:
        return 1.0, None
    model, missing = _similarity_model()
    if model is None:
        return None, f"similarity model unavailable: {missing}"
    if not text.strip() or not reference.strip():
        return None, "empty text"
    return float(model.similarity(reference, text)), None
