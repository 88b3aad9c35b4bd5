"""A causal LM from a local transformers folder (``lm = "<folder>"``), sampled step by step here.

torch and transformers are imported inside the methods that need them: importing
this module (and wmbench.api, which imports the package) must stay cheap.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from wmbench.modalities.text.lm.base import LMError, LogitBias, batch_rows
from wmbench.modalities.text.lm.fast_head import faster_head

if TYPE_CHECKING:
    from wmbench.api import Filler


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
        faster_head(model)
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
        for prompt, seed, bias, filler in batch_rows(prompts, seeds, biases, fillers):
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
