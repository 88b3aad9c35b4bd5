"""Interpolated modified Kneser-Ney word n-gram language model, in numpy: training,
scoring and persistence (sampling and rendering text: :mod:`wmbench.modalities.text.ngram_generate`).

Why an n-gram model: frequency-skew watermarks (green-list marks) need a model that
gives a full next-word distribution at every step, so that they can add ``delta`` to
the logits of green words before sampling. The bench must run offline and fast on
CPU; an n-gram model trained in about a second on text that ships with Python gives
that, and it is transparent enough to test exactly (distributions sum to one).

Model (Chen & Goodman's interpolated modified Kneser-Ney, order ``N``, default 3):

* Training text is split into paragraphs at blank lines; each paragraph is one
  sequence ``<s>`` x (N-1), its normalized tokens (``tokenize.normalize``), ``</s>``.
  Sentence ends inside a paragraph are ordinary tokens (".", "?"), so the model
  learns to carry on after them.
* Words seen fewer than ``min_count`` times (or beyond ``max_vocab``) become
  ``<unk>``, which gives the model a realistic probability for unseen words.
* Highest order uses raw counts; lower orders use continuation counts (number of
  distinct left neighbours), except n-grams that start with ``<s>``, which have no
  left neighbour and keep raw counts.
* Three discounts per order, D1, D2, D3+, from the counts of counts.
* ``p_n(w|h) = max(c(hw) - D(c(hw)), 0) / c(h) + gamma(h) p_{n-1}(w|h')`` with
  ``gamma(h) = (D1 N1(h) + D2 N2(h) + D3 N3+(h)) / c(h)``; an unseen context passes
  the lower order through unchanged; the base of the recursion is uniform over
  every token but ``<s>``, so no word ever has probability zero except ``<s>``.

Storage: for each order, the contexts that occur are kept as sorted int64 keys
(ids in base V) with a CSR row of (word id, discounted mass) per context and the
context's ``gamma``. ``next_logprobs`` therefore costs one ``searchsorted`` and one
scaled O(V) update per order, with no Python loop over the vocabulary.

``save``/``load`` use one ``.npz`` (arrays plus the vocabulary as JSON bytes, no
pickle), written to a temporary file and renamed so readers never see half a file.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wmbench.modalities.text.tokenize import Token, normalize, tokenize

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIALS = (UNK, BOS, EOS)
FORMAT_VERSION = 1

# Discounts used when a tiny corpus lacks the counts-of-counts to estimate them.
_FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
_MIN_DISCOUNT = 0.05

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs of ``text``, without empty ones."""
    return [p for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


@dataclass(frozen=True)
class OrderTable:
    """Probabilities of one order: a CSR row per context seen in training.

    ``vals[j]`` is the discounted mass ``(c - D(c)) / c(h)`` of word ``cols[j]`` in the
    row's context; ``gamma[r]`` is the mass that row hands to the next lower order.
    ``gram_keys`` (context key * V + word) is sorted, for whole-sequence lookups.
    """

    ctx_keys: np.ndarray  # int64 (R,), sorted
    indptr: np.ndarray  # int64 (R + 1,)
    cols: np.ndarray  # int32 (nnz,), sorted within a row
    vals: np.ndarray  # float64 (nnz,)
    gamma: np.ndarray  # float64 (R,)
    gram_keys: np.ndarray  # int64 (nnz,), sorted

    @classmethod
    def build(cls, ctx_keys: np.ndarray, indptr: np.ndarray, cols: np.ndarray,
              vals: np.ndarray, gamma: np.ndarray, vocab_size: int) -> OrderTable:
        rows = np.repeat(np.arange(len(ctx_keys)), np.diff(indptr))
        gram_keys = ctx_keys[rows] * np.int64(vocab_size) + cols.astype(np.int64)
        return cls(ctx_keys.astype(np.int64), indptr.astype(np.int64), cols.astype(np.int32),
                   vals.astype(np.float64), gamma.astype(np.float64), gram_keys)

    def row(self, key: int) -> int:
        """Row of context ``key``, or -1 if the context never occurred."""
        r = int(np.searchsorted(self.ctx_keys, key))
        return r if r < len(self.ctx_keys) and self.ctx_keys[r] == key else -1


def _discounts(adjusted: np.ndarray) -> tuple[float, float, float]:
    """Modified-KN discounts D1, D2, D3+ from the counts of counts (Chen & Goodman)."""
    n1, n2, n3, n4 = (int(np.count_nonzero(adjusted == k)) for k in (1, 2, 3, 4))
    if n1 == 0 or n2 == 0:
        return _FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    d1 = 1 - 2 * y * n2 / n1
    d2 = 2 - 3 * y * n3 / n2
    d3 = 3 - 4 * y * n4 / n3 if n3 else _FALLBACK_DISCOUNTS[2]
    # D_k <= k keeps every row a proper distribution; D_k > 0 keeps gamma > 0 so
    # lower orders (and finally the uniform base) always get some mass.
    return (min(max(d1, _MIN_DISCOUNT), 1.0), min(max(d2, _MIN_DISCOUNT), 2.0), min(max(d3, _MIN_DISCOUNT), 3.0))


def _window_keys(tokens: np.ndarray, starts: np.ndarray, n: int, v: int) -> np.ndarray:
    """Keys (ids in base v) of every n-gram inside one sequence whose last token is not <s>."""
    last = np.arange(n - 1, len(tokens))
    ok = (last - (n - 1) >= starts[last]) & (tokens[last] != BOS_ID)
    last = last[ok]
    keys = np.zeros(len(last), dtype=np.int64)
    for j in range(n):
        keys = keys * v + tokens[last - (n - 1) + j]
    return keys


class NgramLM:
    """A trained model: vocabulary, per-order tables, and the surface form of each word."""

    def __init__(self, vocab: list[str], order: int, tables: list[OrderTable],
                 discounts: list[tuple[float, float, float]], surface: list[str] | None = None,
                 info: dict[str, object] | None = None) -> None:
        if list(vocab[:3]) != list(SPECIALS):
            raise ValueError(f"vocab must start with {SPECIALS}")
        if len(tables) != order:
            raise ValueError(f"need {order} order tables, got {len(tables)}")
        self.vocab: list[str] = list(vocab)
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.vocab)}
        self.order = order
        self.tables = tables
        self.discounts = discounts
        self.surface: list[str] = list(surface) if surface is not None else list(self.vocab)
        self.info: dict[str, object] = dict(info or {})
        v = len(self.vocab)
        base = np.full(v, 1.0 / (v - 1))
        base[BOS_ID] = 0.0  # never predicted: it only pads the history
        self._base = base
        if len(self.surface) != v:
            raise ValueError("surface must have one entry per vocabulary word")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # ----------------------------------------------------------------- training
    @classmethod
    def train(cls, texts: Iterable[str], order: int = 3, min_count: int = 2,
              max_vocab: int | None = None) -> NgramLM:
        """Count, smooth and index ``texts`` (each split into paragraphs at blank lines).

        ``min_count``: words seen fewer times become ``<unk>``; ``max_vocab``: keep at
        most this many words (most frequent first, specials not counted).
        """
        if order < 1:
            raise ValueError("order must be >= 1")
        if min_count < 1:
            raise ValueError("min_count must be >= 1")
        t0 = time.perf_counter()
        seqs: list[list[str]] = []
        surfaces: Counter[tuple[str, str]] = Counter()
        for text in texts:
            for para in paragraphs(text):
                toks = [t.text for t in tokenize(para) if t.text]
                forms = [normalize(t) for t in toks]
                if forms:
                    seqs.append(forms)
                    surfaces.update(zip(forms, toks, strict=True))
        if not seqs:
            raise ValueError("no training text")
        counts = Counter(w for s in seqs for w in s)
        for special in SPECIALS:
            counts.pop(special, None)
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            kept = kept[:max_vocab]
        vocab = list(SPECIALS) + kept
        v = len(vocab)
        if v ** order >= 2 ** 63:
            raise ValueError(f"vocabulary {v} too large for order {order} (keys overflow int64)")
        index = {w: i for i, w in enumerate(vocab)}

        best: dict[str, tuple[int, str]] = {}
        for (form, surf), c in surfaces.items():
            if form in index and (form not in best or (-c, surf) < (-best[form][0], best[form][1])):
                best[form] = (c, surf)
        surface = ["", "", ""] + [best[w][1] for w in kept]

        pad = order - 1
        lengths = np.array([pad + len(s) + 1 for s in seqs], dtype=np.int64)
        tokens = np.empty(int(lengths.sum()), dtype=np.int64)
        pos = 0
        for s in seqs:
            tokens[pos:pos + pad] = BOS_ID
            tokens[pos + pad:pos + pad + len(s)] = [index.get(w, UNK_ID) for w in s]
            tokens[pos + pad + len(s)] = EOS_ID
            pos += pad + len(s) + 1
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)

        # Types and raw counts of every order.
        grams: list[tuple[np.ndarray, np.ndarray]] = []
        for n in range(1, order + 1):
            keys, raw = np.unique(_window_keys(tokens, starts, n, v), return_counts=True)
            grams.append((keys, raw.astype(np.int64)))

        tables: list[OrderTable] = []
        discounts: list[tuple[float, float, float]] = []
        for n in range(1, order + 1):
            keys, raw = grams[n - 1]
            if n == order:
                adjusted = raw
            else:
                suffix, left_types = np.unique(grams[n][0] % (v ** n), return_counts=True)
                at = np.searchsorted(suffix, keys)
                at_ok = np.minimum(at, len(suffix) - 1)
                found = suffix[at_ok] == keys
                starts_bos = (keys // (v ** (n - 1))) == BOS_ID if n > 1 else np.zeros(len(keys), bool)
                adjusted = np.where(starts_bos | ~found, raw, left_types[at_ok])
            d = _discounts(adjusted)
            discounts.append(d)
            ctx = keys // v
            cols = keys % v
            ctx_keys, first = np.unique(ctx, return_index=True)
            indptr = np.append(first, len(keys)).astype(np.int64)
            total = np.add.reduceat(adjusted, first).astype(np.float64)
            bucket = np.minimum(adjusted, 3)
            dvec = np.array([0.0, *d])[bucket]
            row_of = np.repeat(np.arange(len(ctx_keys)), np.diff(indptr))
            vals = (adjusted - dvec) / total[row_of]
            spent = np.add.reduceat(dvec, first)
            gamma = spent / total
            tables.append(OrderTable.build(ctx_keys, indptr, cols, vals, gamma, v))

        info = {
            "order": order,
            "min_count": min_count,
            "max_vocab": max_vocab,
            "train_paragraphs": len(seqs),
            "train_tokens": int(sum(len(s) for s in seqs)),
            "train_seconds": round(time.perf_counter() - t0, 3),
        }
        return cls(vocab, order, tables, discounts, surface, info)

    # ------------------------------------------------------------- encoding
    def encode(self, tokens: Iterable[Token | str]) -> np.ndarray:
        """Ids of ``tokens`` (Tokens or token strings), normalized; unknown words -> ``<unk>``.

        The empty end token of ``tokenize`` is skipped.
        """
        index = self.index
        out = []
        for t in tokens:
            text = t.text if isinstance(t, Token) else t
            if text:
                out.append(index.get(normalize(text), UNK_ID))
        return np.array(out, dtype=np.int64)

    def encode_text(self, text: str) -> np.ndarray:
        """``encode(tokenize(text))``: the ids a detector scores for ``text``."""
        return self.encode(tokenize(text))

    # ------------------------------------------------------------- scoring
    def _check_ids(self, ids: np.ndarray) -> None:
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocab)):
            raise ValueError(f"token id out of range [0, {len(self.vocab)})")

    def next_probs(self, context_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """P(next word | context) over the whole vocabulary (float64, sums to 1)."""
        n_hist = self.order - 1
        ctx = np.asarray(context_ids, dtype=np.int64)[-n_hist:] if n_hist else np.empty(0, np.int64)
        self._check_ids(ctx)
        hist = [BOS_ID] * (n_hist - len(ctx)) + ctx.tolist()
        p = self._base.copy()
        for n in range(1, self.order + 1):
            key = 0
            for w in hist[len(hist) - (n - 1):] if n > 1 else ():
                key = key * len(self.vocab) + w
            table = self.tables[n - 1]
            r = table.row(key)
            if r < 0:
                continue  # unseen context: the lower order passes through unchanged
            a, b = table.indptr[r], table.indptr[r + 1]
            p *= table.gamma[r]
            p[table.cols[a:b]] += table.vals[a:b]
        return p

    def next_logprobs(self, context_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """log P(next word | context), length V; ``<s>`` gets ``-inf``.

        Only the last ``order - 1`` ids matter; a shorter context is padded with
        ``<s>`` as at the start of a paragraph. This is the watermark hook: add delta
        to green ids, then sample.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.next_probs(context_ids))

    def logprob_sequence(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """log P(ids[t] | <s>-padded ids[:t]) for every t, vectorised over positions."""
        ids = np.asarray(ids, dtype=np.int64)
        self._check_ids(ids)
        n_hist = self.order - 1
        seq = np.concatenate([np.full(n_hist, BOS_ID, dtype=np.int64), ids])
        targets = np.arange(n_hist, len(seq))
        v = np.int64(len(self.vocab))
        p = self._base[ids].copy()
        for n in range(1, self.order + 1):
            table = self.tables[n - 1]
            ctx = np.zeros(len(ids), dtype=np.int64)
            for j in range(n - 1):
                ctx = ctx * v + seq[targets - (n - 1) + j]
            r = np.searchsorted(table.ctx_keys, ctx)
            r_ok = np.minimum(r, len(table.ctx_keys) - 1)
            seen = table.ctx_keys[r_ok] == ctx
            g = ctx * v + ids
            gi = np.minimum(np.searchsorted(table.gram_keys, g), len(table.gram_keys) - 1)
            direct = np.where(table.gram_keys[gi] == g, table.vals[gi], 0.0)
            p = np.where(seen, table.gamma[r_ok] * p + direct, p)
        with np.errstate(divide="ignore"):
            return np.log(p)

    def perplexity(self, text: str) -> float:
        """exp of the mean negative log-probability per token, ``</s>`` of each paragraph included."""
        total, count = 0.0, 0
        for para in paragraphs(text):
            ids = self.encode_text(para)
            lp = self.logprob_sequence(np.append(ids, EOS_ID))
            total += float(lp.sum())
            count += len(lp)
        if count == 0:
            raise ValueError("no tokens to score")
        return math.exp(-total / count)

    # ------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one ``.npz`` atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        meta = {
            "format": FORMAT_VERSION,
            "order": self.order,
            "vocab": self.vocab,
            "surface": self.surface,
            "discounts": self.discounts,
            "info": self.info,
        }
        arrays: dict[str, np.ndarray] = {
            "meta_json": np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8),
        }
        for n, t in enumerate(self.tables, start=1):
            arrays.update({f"ctx_keys_{n}": t.ctx_keys, f"indptr_{n}": t.indptr, f"cols_{n}": t.cols,
                           f"vals_{n}": t.vals, f"gamma_{n}": t.gamma})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NgramLM:
        """Read a model written by ``save`` (no pickle is ever loaded)."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta_json"].tobytes().decode("utf-8"))
            if meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"{path}: model format {meta.get('format')}, expected {FORMAT_VERSION}")
            order, vocab = int(meta["order"]), list(meta["vocab"])
            tables = [
                OrderTable.build(z[f"ctx_keys_{n}"], z[f"indptr_{n}"], z[f"cols_{n}"],
                                 z[f"vals_{n}"], z[f"gamma_{n}"], len(vocab))
                for n in range(1, order + 1)
            ]
        discounts = [tuple(d) for d in meta["discounts"]]
        return cls(vocab, order, tables, discounts, meta["surface"], meta["info"])  # type: ignore[arg-type]
