"""Text quality per cell: perplexity under the reference LM, semantic similarity.

Both backends load once per worker process. Similarity needs the optional model
package; without it the column stays empty and the run says why once.
"""

from __future__ import annotations

import warnings
from functools import cache

from wmbench.errors import WmbenchError


@cache
def _lm():  # noqa: ANN202 - NgramLM
    from wmbench.text.corpus import default_lm

    return default_lm()


@cache
def _similarity_model():  # noqa: ANN202 - SimilarityModel | None
    from wmbench.text.similarity import load_similarity

    try:
        return load_similarity()
    except WmbenchError as exc:
        warnings.warn(f"semantic similarity not measured: {exc}", stacklevel=2)
        return None


def perplexity(text: str) -> float | None:
    """Perplexity under the embedded n-gram LM; None for a text with no token."""
    if not text.strip():
        return None
    return float(_lm().perplexity(text))


def similarity(reference: str, text: str) -> float | None:
    """Cosine similarity of all-MiniLM-L6-v2 embeddings; None if the model is missing."""
    if reference == text:
        return 1.0
    model = _similarity_model()
    if model is None or not text.strip() or not reference.strip():
        return None
    return float(model.similarity(reference, text))
