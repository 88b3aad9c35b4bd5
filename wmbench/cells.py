"""Planning: turn a suite and its samples into jobs of cells, each with a stable key.

A cell is (sample, method, key, attack, strength, marked). Cells that share a
(sample, method, key, attack) form one job, so a worker loads the images once per
attack sweep. The embedding itself is a job of its own ("none" attack) that runs
first and leaves the marked image in the run's cache, so every later attack reuses
it: an N-attack sweep costs one embed plus N times (attack + detect).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmbench import registry
from wmbench.suite import AttackConfig, MethodConfig, Suite
from wmbench.types import Sample

NONE_ATTACK = "none"


@dataclass(frozen=True)
class Cell:
    key: str
    strength: Any
    strength_index: int
    marked: bool


@dataclass(frozen=True)
class Job:
    sample: Sample
    method: MethodConfig
    attack: AttackConfig | None  # None: embed, then detect the clean marked and unmarked items
    cells: tuple[Cell, ...]
    marked_cache: str  # the marked item, written by the embed job
    negative_cache: str  # the unmarked twin, cached only by generation marks
    negatives_only: bool = False  # a human text under a generation mark: nothing to embed

    @property
    def attack_label(self) -> str:
        return self.attack.label if self.attack else NONE_ATTACK

    @property
    def embed_id(self) -> tuple[str, MethodConfig]:
        """Jobs sharing this id share one embedding (same sample, method, key and settings)."""
        return (self.sample.id, self.method)


def cell_key(seed: int, sample: Sample, method: MethodConfig, attack: AttackConfig | None,
             strength: Any, marked: bool) -> str:
    steps = [[s.attack, s.strength] for s in attack.steps] if attack else []
    # The sample's id, not its path: a run folder must resume after the project or
    # the virtualenv (where the built-in photos live) has moved.
    ident = [seed, sample.id, method.name, method.key, [list(p) for p in method.params],
             attack.label if attack else NONE_ATTACK, steps, strength, marked]
    if method.negative_keys and not marked:  # a different cell (more scores), not the same one resumed
        ident.append(["negative_keys", method.negative_keys])
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cache_paths(run_dir: Path, sample: Sample, method: MethodConfig) -> tuple[str, str]:
    """Where the embed job leaves the marked item and its unmarked twin."""
    ident = [sample.id, method.name, method.key, [list(p) for p in method.params]]
    digest = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:24]
    suffix = registry.get_modality(sample.modality).cache_suffix
    return (str(run_dir / "cache" / "marked" / f"{digest}{suffix}"),
            str(run_dir / "cache" / "unmarked" / f"{digest}{suffix}"))


def _generation_time(attack: AttackConfig) -> bool:
    """An attack whose first step acts while the mark generates (it declares a filler)."""
    return registry.get_attack(attack.steps[0].attack).generation_time


def plan(suite: Suite, samples: list[Sample], run_dir: Path) -> tuple[list[Job], list[Job]]:
    """Return (embed jobs, attack jobs) covering every cell of the suite."""
    embed_jobs: list[Job] = []
    attack_jobs: list[Job] = []
    for method in suite.methods:
        cls = registry.get_method(method.name)
        eligible = [s for s in samples if s.modality == cls.modality and (cls.generates or s.role == "item")]
        if method.max_samples is not None:
            eligible = _first_of_each_role(eligible, method.max_samples)
        attacks = [a for a in suite.attacks if a.modality == cls.modality
                   and (method.attacks is None or a.label in method.attacks)]
        for sample in eligible:
            # A generation mark writes its positives from prompts; human texts serve it
            # as extra negatives only (detected with the same key, never marked).
            negatives_only = cls.generates and sample.role == "item"
            polarities = (False,) if negatives_only else (True, False)
            caches = cache_paths(run_dir, sample, method)
            clean = tuple(Cell(cell_key(suite.seed, sample, method, None, None, m), None, 0, m) for m in polarities)
            embed_jobs.append(Job(sample, method, None, clean, *caches, negatives_only=negatives_only))
            for attack in attacks:
                if _generation_time(attack) and (negatives_only or not cls.accepts_filler):
                    continue  # an emoji-style attack needs a generation to act on
                cells = tuple(
                    Cell(cell_key(suite.seed, sample, method, attack, s, m), s, i, m)
                    for i, s in enumerate(attack.strengths) for m in polarities
                )
                attack_jobs.append(Job(sample, method, attack, cells, *caches, negatives_only=negatives_only))
    return embed_jobs, attack_jobs


def _first_of_each_role(samples: list[Sample], n: int) -> list[Sample]:
    """The first ``n`` samples of each role (prompts and human texts are capped apart)."""
    counts: dict[str, int] = {}
    kept = []
    for s in samples:
        counts[s.role] = counts.get(s.role, 0) + 1
        if counts[s.role] <= n:
            kept.append(s)
    return kept


def attack_seed(seed: int, sample_id: str, attack_label: str, strength_index: int) -> list[int]:
    """Entropy for one attack call: the same for the marked and unmarked copy and for
    every method, so a random crop cuts the same region everywhere it is compared."""
    digest = hashlib.sha256(json.dumps([sample_id, attack_label, strength_index]).encode()).digest()
    return [seed & 0xFFFFFFFF, *[int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]]
