"""One example item per method for the report's modality views (gallery, text viewer).

The store keeps numbers; the items come from the run folder, located through the
run manifest (never through the suite file, a plugin folder or sample discovery):

* the marked item (and a generation mark's unmarked twin) from the run cache, where
  the embed job left it (``manifest["cache"]``);
* the original from the sample's source as recorded in the manifest (it may have
  moved: then the view says so);
* an attacked item by replaying the attack on the cached marked item with the cell's
  seeded draws (:func:`wmbench.execute.replay_attack`): attacks are deterministic by
  contract, so this is the item that was detected.

Each modality's ``viewer`` turns a :class:`MethodExample` into a view with an
``html()`` method. Nothing here fails the report: a missing piece becomes a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from wmbench import registry
from wmbench.cells import NONE_ATTACK
from wmbench.manifest import attack_config, cache_key, method_config
from wmbench.report.run import StoredRun
from wmbench.store import Record
from wmbench.suite import AttackConfig, MethodConfig
from wmbench.types import ExampleMissing, Modality, Sample


@dataclass
class RunExamples:
    """The run folder, its manifest and its records by cell."""

    run: StoredRun
    cells: dict[tuple, Record] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for r in self.run.records:
            self.cells.setdefault((r.method, r.wm_key, r.sample, r.attack, r.strength_index, r.marked), r)

    @property
    def manifest(self) -> dict[str, Any]:
        return self.run.manifest or {}

    def example(self, modality: str, label: str) -> "MethodExample":
        """The first marked sample of method ``label`` (in the run's sample order), or ExampleMissing."""
        if self.run.run_dir is None:
            raise ExampleMissing("no run folder: the report was rendered from records alone")
        if not self.manifest:
            raise ExampleMissing("the run was stored before runs kept a manifest; run it again for examples")
        clean = [(r.sample, r.wm_key) for (m, _, _, a, _, marked), r in self.cells.items()
                 if m == label and a == NONE_ATTACK and marked and r.error is None and r.p_value is not None]
        if not clean:
            raise ExampleMissing("no marked item of this method was embedded without error")
        samples = {s["id"]: s for s in self.manifest.get("samples", [])}
        rank = {s: i for i, s in enumerate(samples)}
        # the run's sample order, not the order cells finished in: the same example whatever the workers
        _, _, (sample_id, key) = min((rank.get(s, len(rank)), i, (s, k)) for i, (s, k) in enumerate(clean))
        entry = next((m for m in self.manifest.get("methods", []) if m["label"] == label and m["key"] == key), None)
        if entry is None:
            raise ExampleMissing("the run manifest does not list this method")
        try:
            kind = registry.get_modality(modality)
        except registry.RegistryError:
            raise ExampleMissing(f"the {modality} modality is not installed here, so its items cannot be read")
        info = samples.get(sample_id, {})
        sample = Sample(id=sample_id, modality=modality, source=str(info.get("source", "")),
                        role=str(info.get("role", "item")))
        return MethodExample(self, method_config(entry), sample, kind)


@dataclass
class MethodExample:
    """What a modality viewer gets: one marked sample of one method, and how to get its
    original, its marked item, its stored cells and its attacked versions."""

    run: RunExamples
    method: MethodConfig
    sample: Sample
    kind: Modality

    @property
    def modality(self) -> str:
        return self.kind.name

    @property
    def alpha(self) -> float:
        alpha = self.run.run.meta.get("alpha")
        return float(alpha) if isinstance(alpha, (int, float)) and 0 < alpha < 1 else 0.01

    def record(self, attack: str, strength_index: int = 0, marked: bool = True) -> Record | None:
        return self.run.cells.get((self.method.label, self.method.key, self.sample.id, attack, strength_index,
                                   marked))

    def attack_tags(self, attack: AttackConfig) -> dict[str, Any]:
        return self.run.run.attack_tags(attack.label)

    def marked(self) -> Any:
        run_dir = self.run.run.run_dir
        cached = self.run.manifest.get("cache", {}).get(cache_key(self.method.label, self.method.key, self.sample.id))
        if not cached or run_dir is None:
            raise ExampleMissing("the run manifest has no cached marked item for this sample")
        path = run_dir / cached[0]
        if not path.is_file():
            raise ExampleMissing(f"the marked item is not in the run cache ({cached[0]}): "
                                 f"it was deleted, or the report was rebuilt without the run's cache folder")
        return self._load(str(path), "the marked item")

    def original(self) -> Any:
        from wmbench.samples import source_file

        source = self.sample.source
        if not source:
            raise ExampleMissing(f"the source of sample {self.sample.id!r} is not recorded with the run")
        if not Path(source_file(source)).is_file():
            raise ExampleMissing(f"the original is not available here ({source}): "
                                 f"the report was rebuilt away from the run's samples")
        return self._load(source, "the original")

    def _load(self, source: str, what: str) -> Any:
        try:
            return self.kind.load(source)
        except Exception as exc:
            raise ExampleMissing(f"{what} could not be read: {exc}") from None

    def attacks(self) -> list[AttackConfig]:
        """The attacks this method ran that can be replayed on the marked item alone here.

        Generation-time attacks (a filler written while the text is generated) need the
        language model to write the text again, and attacks tagged ``replayable=False``
        (a server, a large model) are never run at report time; attacks whose plugin is
        not installed here cannot be.
        """
        out = []
        for entry in self.run.manifest.get("attacks", []):
            tags = entry.get("tags", {})
            replayable = tags.get("replayable", True) and not tags.get("generation_time")
            if entry.get("modality") != self.modality or not replayable:
                continue
            if self.method.attacks is not None and entry["label"] not in self.method.attacks:
                continue
            try:
                for step in entry["steps"]:
                    registry.get_attack(step["attack"])
            except registry.RegistryError:
                continue
            out.append(attack_config(entry))
        return out

    def usable(self, attack: AttackConfig) -> list[int]:
        """Strength indices, strong to weak, whose marked cell of this sample has a detection."""
        return [i for i in reversed(range(len(attack.strengths)))
                if (r := self.record(attack.label, i)) is not None and r.error is None and r.skipped is None
                and r.p_value is not None]

    def attacked(self, item: Any, attack: AttackConfig, strength_index: int) -> Any:
        """``item`` put through the attack exactly as the cell did (same steps, same seeded draws)."""
        from wmbench.execute import replay_attack

        seed = int(self.run.manifest.get("suite", {}).get("seed", self.run.run.meta.get("seed", 0)))
        return replay_attack(attack, self.kind, item, seed=seed, sample_id=self.sample.id,
                             strength_index=strength_index)


def attach_examples(views: Sequence[Any], run: StoredRun) -> list[Any]:
    """The method views with their modality's example view (gallery, text viewer).

    Never fails the report: a problem becomes the note of that method's example.
    """
    examples = RunExamples(run)
    out, first = [], set()
    for view in views:
        try:
            kind = registry.get_modality(view.summary.modality)
        except registry.RegistryError:
            out.append(view)
            continue
        if kind.viewer is None:
            out.append(view)
            continue
        try:
            example = kind.viewer(examples.example(kind.name, view.summary.method))
            if kind.name not in first and _has_first(example):  # the first view of a kind carries its CSS
                first.add(kind.name)
                example = replace(example, first=True)
        except ExampleMissing as exc:
            example = _Note(f"No example: {exc}.")
        except Exception as exc:  # an unexpected failure costs the example, never the report
            example = _Note(f"No example: {type(exc).__name__}: {exc}")
        out.append(replace(view, example=example))
    return out


def _has_first(view: Any) -> bool:
    """A view may be any object with ``html()``; a dataclass with a ``first`` field is told
    whether it is the first of its kind on the page (to include its stylesheet once)."""
    return is_dataclass(view) and "first" in {f.name for f in fields(view)}


@dataclass(frozen=True)
class _Note:
    """An example that could not be built: its reason, shown where the view would be."""

    text: str

    def html(self) -> Any:
        from markupsafe import Markup, escape

        return Markup('<p class="note">') + escape(self.text) + Markup("</p>")
