"""Running one job inside a worker: embed or load, attack, detect, measure.

Nothing here writes the results store: a job returns its Records and the main
process stores them, so a worker that dies cannot leave a half-written cell. Any
exception inside a cell becomes that cell's ``error`` and the job goes on.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from wmbench import registry
from wmbench.cells import Cell, Job, attack_seed
from wmbench.samples import source_file
from wmbench.suite import AttackConfig, ChainStep
from wmbench.store import POSITIVE, TWIN, UNPAIRED, Record
from wmbench.types import (
    Detection,
    DetectorRefused,
    Filler,
    FillerPairEmbedding,
    Modality,
    MultiKeyScoring,
    PairEmbedding,
    SkipCell,
    Watermarker,
)


@dataclass(frozen=True)
class RunContext:
    seed: int
    alpha: float
    debug: bool = False
    # modality -> its suite settings table, passed to Modality.measure (the text LM, ...)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)


def _record(job: Job, cell: Cell, **values: Any) -> Record:
    role = POSITIVE if cell.marked else UNPAIRED if job.negatives_only else TWIN
    return Record(
        cell_key=cell.key, sample=job.sample.id, modality=job.sample.modality,
        method=job.method.label, wm_key=job.method.key, attack=job.attack_label,
        strength=cell.strength, strength_index=cell.strength_index, marked=cell.marked, role=role, **values,
    )


def _error_text(exc: BaseException, debug: bool) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    if debug:
        text += "\n" + "".join(traceback.format_exception(exc))
    return text


def failed_job(job: Job, error: str) -> list[Record]:
    """Records for a job that could not run at all (e.g. its sample failed to load)."""
    return [_record(job, cell, error=error) for cell in job.cells]


class _ItemCache:
    """The few items a worker used last, so consecutive jobs of one sample decode once.

    Keyed by path and modification time; items are handed out as the modality copies
    them (arrays: a copy), so an attack that broke the no-in-place contract could not
    poison later cells.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, int], Any] = OrderedDict()

    def load(self, kind: Modality, path: str) -> Any:
        key = (path, _mtime(path))
        if key not in self.items:
            self.put(kind, path, kind.load(path), key)
        self.items.move_to_end(key)
        return kind.copy(self.items[key])

    def put(self, kind: Modality, path: str, item: Any, key: tuple[str, int] | None = None) -> None:
        self.items[key or (path, _mtime(path))] = kind.copy(item)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


def _mtime(path: str) -> int:
    try:
        return os.stat(source_file(path)).st_mtime_ns
    except OSError:
        return -1


_items = _ItemCache()


def run_job(job: Job, ctx: RunContext) -> list[Record]:
    kind = registry.get_modality(job.sample.modality)
    try:
        original = _items.load(kind, job.sample.source)
    except Exception as exc:  # a bad sample: every cell of the job says why
        return failed_job(job, _error_text(exc, ctx.debug))
    method = registry.method_instance(job.method.name, job.method.params)
    if job.negatives_only:  # a human text under a generation mark: nothing to embed
        return [_run_cell(job, cell, ctx, method, kind, original, original) for cell in job.cells]
    if job.attack is None:
        return _run_embed(job, ctx, method, kind, original)
    try:
        marked = _items.load(kind, job.marked_cache)
        negative = _items.load(kind, job.negative_cache) if method.generates else original
    except Exception as exc:
        return failed_job(job, f"embedded item missing from the run cache: {_error_text(exc, ctx.debug)}")
    generated = _generate_with_fillers(job, ctx, method, original) if _filler_attack(job) else None
    return [_run_cell(job, cell, ctx, method, kind, original, marked if cell.marked else negative, generated)
            for cell in job.cells]


def _generate_with_fillers(job: Job, ctx: RunContext, method: Watermarker,
                           original: Any) -> dict[int, tuple] | None:
    """Every strength of a generation-time attack job in one batch: strength index ->
    (marked, unmarked), when the method can (``embed_pairs``). None: each cell then
    generates its own text, and a cell whose generation fails records that error: the
    batch is only a speed-up, so its failure loses nothing."""
    if not (method.accepts_filler and isinstance(method, FillerPairEmbedding)):
        return None
    indices = sorted({cell.strength_index for cell in job.cells})
    cells = {cell.strength_index: cell for cell in job.cells}
    try:
        fillers = [_filler(job, cells[i], np.random.default_rng(
            attack_seed(ctx.seed, job.sample.id, job.attack_label, i))) for i in indices]
        return dict(zip(indices, method.embed_pairs([original] * len(indices), job.method.key, fillers)))
    except Exception:  # each cell generates again on its own and records the error it meets
        return None


def _run_embed(job: Job, ctx: RunContext, method: Watermarker, kind: Modality, original: Any) -> list[Record]:
    """Embed (and, for generation marks, generate the unmarked twin), cache, detect both."""
    t0 = time.perf_counter()
    try:
        if method.generates and isinstance(method, PairEmbedding):  # both twins in one batch
            marked, negative = method.embed_pair(original, job.method.key)
            embed_seconds = (time.perf_counter() - t0) / 2  # per text
        else:
            marked = method.embed(original, job.method.key)
            embed_seconds = time.perf_counter() - t0
            negative = method.unmarked(original, job.method.key) if method.generates else original
    except Exception as exc:
        return failed_job(job, f"embedding failed: {_error_text(exc, ctx.debug)}")
    cached = [(marked, job.marked_cache)] + ([(negative, job.negative_cache)] if method.generates else [])
    for item, path in cached:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        kind.save(item, Path(path))
        _items.put(kind, path, item)
    records = [_run_cell(job, cell, ctx, method, kind, original, marked if cell.marked else negative)
               for cell in job.cells]
    for record in records:
        if record.marked and record.error is None:
            record.extra = {**(record.extra or {}), "embed_seconds": round(embed_seconds, 4)}
    return records


def apply_steps(steps: Sequence[ChainStep], kind: Modality, item: Any, strength: Any,
                rng: np.random.Generator) -> Any:
    """Run an attack's steps in order (one step unless it is a chain), checking each output."""
    out = item
    for step in steps:
        out = registry.get_attack(step.attack)(out, strength if step.strength is None else step.strength, rng,
                                               **dict(step.params))
        problem = kind.problem(out)
        if problem:
            raise TypeError(f"attack {step.attack!r} broke the contract: {problem}")
    return out


def align(steps: Sequence[ChainStep], kind: Modality, reference: Any, strength: Any,
          seed: list[int]) -> tuple[Any, float]:
    """The reference put through the attack's ``geometric`` steps with the cell's draws, and
    the fraction of content the attack keeps (the product of its steps' declarations).

    Quality is then measured against what the attack did to the geometry: a mirror flip of
    a marked photo compares with the flipped original and costs what the mark cost. The
    replay takes a generator seeded as the cell's was, so a random crop cuts the same
    window (exact when the geometric steps come first or the others draw nothing).
    """
    rng = np.random.default_rng(seed)
    kept = 1.0
    for step in steps:
        spec = registry.get_attack(step.attack)
        value = strength if step.strength is None else step.strength
        if spec.kept is not None:
            kept *= float(spec.kept(reference, value))
        if spec.tags.get("geometric"):
            reference = apply_steps((step,), kind, reference, strength, rng)
    return reference, kept


def replay_attack(attack: AttackConfig, kind: Modality, item: Any, *, seed: int, sample_id: str,
                  strength_index: int) -> Any:
    """``item`` put through ``attack`` exactly as the cell (sample, strength) of a run with
    ``seed`` did: same steps, same seeded draws. Attacks are deterministic by contract,
    so this is the item that cell detected on (the report's gallery shows it)."""
    rng = np.random.default_rng(attack_seed(seed, sample_id, attack.label, strength_index))
    return apply_steps(attack.steps, kind, item, attack.strengths[strength_index], rng)


def _generated_with_filler(job: Job, cell: Cell, method: Watermarker, original: Any, rng: np.random.Generator,
                           generated: dict[int, tuple] | None = None) -> Any:
    """For a generation-time attack (emoji): the item generated again, filler included.

    The first step of the attack names the filler; the rate is that step's strength.
    Marked and unmarked twins draw the same filler seed (same attack rng), as they
    share their sampling draws. ``generated``: the job's texts made in one batch.
    """
    step = job.attack.steps[0]
    if not method.accepts_filler:
        raise SkipCell(f"{step.attack} is a generation-time attack; {job.method.name} does not generate text "
                       f"with a filler")
    filler = _filler(job, cell, rng)
    if generated is not None and cell.strength_index in generated:
        return generated[cell.strength_index][0 if cell.marked else 1]
    make = method.embed if cell.marked else method.unmarked
    return make(original, job.method.key, filler=filler)


def _filler(job: Job, cell: Cell, rng: np.random.Generator) -> Filler:
    """The filler of a generation-time attack's cell; its seed is the first draw of the cell's rng."""
    step = job.attack.steps[0]
    rate = float(cell.strength if step.strength is None else step.strength)
    return Filler(registry.get_attack(step.attack).filler, rate=rate, seed=int(rng.integers(2**63)))


def _filler_attack(job: Job) -> bool:
    return job.attack is not None and registry.get_attack(job.attack.steps[0].attack).generation_time


def _run_cell(job: Job, cell: Cell, ctx: RunContext, method: Watermarker, kind: Modality,
              original: Any, unattacked: Any, generated: dict[int, tuple] | None = None) -> Record:
    seed = attack_seed(ctx.seed, job.sample.id, job.attack_label, cell.strength_index)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    try:
        if _filler_attack(job):
            unattacked_for_attack = _generated_with_filler(job, cell, method, original, rng, generated)
        else:
            unattacked_for_attack = unattacked
        attacked = apply_steps(job.attack.steps if job.attack else (), kind, unattacked_for_attack,
                               cell.strength, rng)
        detection = _detect(method, attacked, job.method.key)
        other_keys = None if cell.marked else _other_keys(method, attacked, job.method.key, job.method.negative_keys)
    except SkipCell as exc:  # cannot run here (e.g. no endpoint configured): not a failure, not a result
        return _record(job, cell, skipped=str(exc).strip() or "skipped by the attack",
                       seconds=time.perf_counter() - t0)
    except Exception as exc:
        return _record(job, cell, error=_error_text(exc, ctx.debug), seconds=time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    # A generation-time attack leaves the attacker a whole text of its own, with no
    # original: only what the item shows alone (fluency) can be measured. Against the
    # unmarked twin it would measure the mark's own divergence (for unigram/kgw on the
    # n-gram LM the clean marked text is already at similarity ~0.45-0.49 to its twin),
    # and against itself it would be 1 by construction: so it stays empty, with the reason.
    generation_time = _filler_attack(job)
    reference = attacked if generation_time else _reference(method, original, unattacked)
    steps = job.attack.steps if job.attack else ()
    try:
        reference, kept = align(steps, kind, reference, cell.strength, seed)
    except Exception as exc:  # the attack ran, its geometric replay did not: say so, measure nothing
        return _record(job, cell, **_detection_fields(detection, ctx.alpha), seconds=seconds, other_keys=other_keys,
                       extra={**detection.extra, "quality_missing": f"aligning the reference failed: "
                                                                     f"{_error_text(exc, ctx.debug)}"})
    options = {**ctx.settings.get(kind.name, {}), "attacked": job.attack is not None, "kept": kept}
    measured = kind.measure(reference, attacked, options)
    if generation_time:
        for spec in kind.metrics:
            if not spec.intrinsic:
                measured[spec.name] = None
                measured[f"{spec.name}_missing"] = ("not measured: a generation-time attack's text has no original "
                                                    "to compare with")
    notes = {k: v for k, v in measured.items() if isinstance(v, str)}
    metrics = {m.name: _number(measured.get(m.name)) for m in kind.metrics}
    return _record(job, cell, **_detection_fields(detection, ctx.alpha), metrics=metrics, seconds=seconds,
                   other_keys=other_keys,
                   extra={**detection.extra, **notes} or None)


def _number(value: Any) -> float | None:
    """A metric value as stored: a float, or None when it was not measured."""
    return None if value is None else float(value)


def _reference(method: Watermarker, original: Any, unattacked: Any) -> Any:
    """What quality is measured against: the clean original for a mark added to an
    item (so embedding cost counts), the unattacked generation for a generated one
    (a prompt is no reference for the text that continues it)."""
    return unattacked if method.generates else original


def _detect(method: Watermarker, item: Any, key: str) -> Detection:
    try:
        return method.detect(item, key)
    except DetectorRefused as exc:
        return Detection(score=0.0, p_value=1.0, extra={"refused": str(exc)})


def negative_keys(key: str, count: int) -> list[str]:
    """The other keys an unmarked cell is scored with: derived from the method's key, so a
    rerun scores the same ones, and never equal to it."""
    return [f"{key}#negative-{i}" for i in range(count)]


def _other_keys(method: Watermarker, item: Any, key: str, count: int) -> list[float] | None:
    """p-values of an unmarked item under ``count`` other keys: one decode where the method
    can (MultiKeyScoring), else one detection per key. A refused read is p = 1, as for the key."""
    if count <= 0:
        return None
    keys = negative_keys(key, count)
    if isinstance(method, MultiKeyScoring):
        try:
            return [d.p_value for d in method.detect_keys(item, keys)]
        except DetectorRefused:
            return [1.0] * count
    return [_detect(method, item, k).p_value for k in keys]


def _detection_fields(detection: Detection, alpha: float) -> dict[str, Any]:
    return dict(
        score=detection.score, p_value=detection.p_value, detected=detection.p_value < alpha,
        bits_matched=detection.bits_matched, bits_total=detection.bits_total,
        tokens=detection.extra.get("tokens_scored"),
    )


def limit_threads(threads: int) -> None:
    """Pin every thread pool in this process to ``threads`` so workers x threads = cores."""
    os.environ["WMBENCH_THREADS"] = str(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
