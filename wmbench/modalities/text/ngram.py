"""The embedded word n-gram language model: one import path for the model and its sampler.

The model (training, scoring, ``save``/``load``) is in
:mod:`wmbench.modalities.text.ngram_model`; sampling and turning ids back into text
are in :mod:`wmbench.modalities.text.ngram_generate`. Both are re-exported here so
callers need not know where the line between them runs.
"""

from __future__ import annotations

from wmbench.modalities.text.ngram_generate import (
    NO_SPACE_AFTER,
    NO_SPACE_BEFORE,
    LogitsProcessor,
    generate,
    generate_ids,
    render,
    render_parts,
)
from wmbench.modalities.text.ngram_model import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    FORMAT_VERSION,
    SPECIALS,
    UNK,
    UNK_ID,
    NgramLM,
    OrderTable,
    paragraphs,
)

__all__ = [
    "BOS", "BOS_ID", "EOS", "EOS_ID", "FORMAT_VERSION", "NO_SPACE_AFTER", "NO_SPACE_BEFORE", "SPECIALS", "UNK",
    "UNK_ID", "LogitsProcessor", "NgramLM", "OrderTable", "generate", "generate_ids", "paragraphs", "render",
    "render_parts",
]
