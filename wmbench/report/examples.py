"""What the report's gallery and text viewer need from a run folder: one example per method.

The store keeps numbers only. The items come from elsewhere, at report time:

* the marked item (and a generation mark's unmarked twin) from the run cache
  (``cells.cache_paths``), where the embed job left it;
* the original from the sample's source (``meta["sample_sources"]``, written by the
  runner; older runs: found again from the suite's sample list);
* an attacked item by running the attack again on the cached marked item, through the
  runner's own code path (``execute.apply_attack``) with the cell's seeded draws
  (``cells.attack_seed``): attacks are deterministic by contract, so this is the item
  that was detected.

The suite comes back from ``meta["suite_text"]``. When it no longer parses (its sample
folder or plugins stayed on the machine that ran it), its methods and attacks are
read one by one and whatever cannot be rebuilt is left out with a note: a report
rebuilt elsewhere renders, with notes where an item is missing, and never fails.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from wmbench import registry
from wmbench.api import Sample
from wmbench.cells import NONE_ATTACK, Job, attack_seed, cache_paths
from wmbench.store import Record
from wmbench.suite import AttackConfig, MethodConfig, Suite, TextSettings, parse_suite


class ExampleMissing(Exception):
    """An item the example needs is not available here; the message is the report's note."""


@dataclass
class RunExamples:
    """The run folder, its suite as far as it can be rebuilt, and its records by cell."""

    run_dir: Path | None
    seed: int
    methods: tuple[MethodConfig, ...]
    attacks: tuple[AttackConfig, ...]
    sources: dict[str, str]
    sample_order: tuple[str, ...]
    cells: dict[tuple, Record]
    problems: list[str] = field(default_factory=list)  # why parts of the suite could not be rebuilt

    def example(self, modality: str, label: str) -> "MethodExample":
        """The first marked sample of method ``label`` (in the run's sample order), or ExampleMissing."""
        if self.run_dir is None:
            raise ExampleMissing("no run folder: the report was rendered from records alone")
        clean = [(r.sample, r.wm_key) for (m, _, _, a, _, marked), r in self.cells.items()
                 if m == label and a == NONE_ATTACK and marked and r.error is None and r.p_value is not None]
        if not clean:
            raise ExampleMissing("no marked item of this method was embedded without error")
        rank = {s: i for i, s in enumerate(self.sample_order)}
        # the run's sample order, not the order cells finished in: the same example whatever the workers
        _, _, (sample_id, key) = min((rank.get(s, len(rank)), i, (s, k)) for i, (s, k) in enumerate(clean))
        config = next((m for m in self.methods if m.label == label and m.key == key), None)
        if config is None:
            raise ExampleMissing("the run's suite could not be rebuilt for this method"
                                 + (f" ({self.problems[0]})" if self.problems else ""))
        role = "prompt" if registry.get_method(config.name).generates else "item"
        sample = Sample(id=sample_id, modality=modality, source=self.sources.get(sample_id, ""), role=role)
        return MethodExample(self, config, sample, modality)


@dataclass
class MethodExample:
    run: RunExamples
    method: MethodConfig
    sample: Sample
    modality: str

    def record(self, attack: str, strength_index: int = 0, marked: bool = True) -> Record | None:
        return self.run.cells.get((self.method.label, self.method.key, self.sample.id, attack, strength_index,
                                   marked))

    def marked(self) -> Any:
        path = Path(cache_paths(self.run.run_dir, self.sample, self.method)[0])
        where = path.relative_to(self.run.run_dir) if path.is_relative_to(self.run.run_dir) else path
        if not path.is_file():
            raise ExampleMissing(f"the marked item is not in the run cache ({where}): "
                                 f"it was deleted, or the report was rebuilt without the run's cache folder")
        return self._load(str(path), "the marked item")

    def original(self) -> Any:
        source = self.sample.source
        if not source:
            raise ExampleMissing(f"the source of sample {self.sample.id!r} is not recorded with the run")
        if not Path(source.rpartition("#L")[0] or source).is_file():
            raise ExampleMissing(f"the original is not available here ({source}): "
                                 f"the report was rebuilt away from the run's samples")
        return self._load(source, "the original")

    def _load(self, source: str, what: str) -> Any:
        from wmbench.modality import modality

        try:
            return modality(self.modality).load(source)
        except Exception as exc:
            raise ExampleMissing(f"{what} could not be read: {exc}") from None

    def attacks(self) -> list[AttackConfig]:
        """The attacks this method ran that can be re-run on the marked item alone.

        Generation-time attacks (a filler written while the text is generated) need
        the language model to write the text again, so they are left out.
        """
        out = []
        for a in self.run.attacks:
            if a.modality != self.modality or (self.method.attacks is not None and a.label not in self.method.attacks):
                continue
            try:
                if registry.get_attack(a.steps[0].attack).filler is not None:
                    continue
            except registry.RegistryError:
                continue
            out.append(a)
        return out

    def usable(self, attack: AttackConfig) -> list[int]:
        """Strength indices, strong to weak, whose marked cell of this sample has a detection."""
        return [i for i in reversed(range(len(attack.strengths)))
                if (r := self.record(attack.label, i)) is not None and r.error is None and r.skipped is None
                and r.p_value is not None]

    def attacked(self, item: Any, attack: AttackConfig, strength_index: int) -> Any:
        """``item`` put through the attack exactly as the cell did (same steps, same seeded draws)."""
        from wmbench.execute import apply_attack
        from wmbench.modality import modality

        job = Job(self.sample, self.method, attack, (), "", "")
        rng = np.random.default_rng(attack_seed(self.run.seed, self.sample, attack.label, strength_index))
        return apply_attack(job, modality(self.modality), item, attack.strengths[strength_index], rng)


def run_examples(records: Sequence[Record], meta: dict[str, Any], run_dir: Path | None) -> RunExamples:
    """Everything the examples need, read once per report."""
    cells = {}
    for r in records:
        cells.setdefault((r.method, r.wm_key, r.sample, r.attack, r.strength_index, r.marked), r)
    samples = meta.get("samples")
    order = tuple(str(s) for s in samples) if isinstance(samples, list) else ()
    seed = meta.get("seed")
    problems: list[str] = []
    suite = _suite(meta, problems)
    if suite is not None:
        methods, attacks, seed = suite.methods, suite.attacks, suite.seed
    else:
        methods, attacks = _lenient(meta.get("suite_text"), problems)
    sources = meta.get("sample_sources")
    if isinstance(sources, dict):
        sources = {str(k): str(v) for k, v in sources.items()}
    else:
        sources = _rediscovered(suite)
    return RunExamples(Path(run_dir) if run_dir is not None else None, int(seed) if isinstance(seed, int) else 0,
                       tuple(methods), tuple(attacks), sources, order, cells, problems)


def _suite(meta: dict[str, Any], problems: list[str]) -> Suite | None:
    text = meta.get("suite_text")
    if not isinstance(text, str):
        problems.append("the run's metadata holds no suite text")
        return None
    label = str(meta.get("suite_path") or "suite")
    base_dir = Path.cwd() if label.startswith("builtin:") else Path(label).resolve().parent
    try:
        return parse_suite(text, label, base_dir)
    except Exception as exc:  # SuiteError, or a plugin that fails to import here
        problems.append(str(exc))
        return None


def _lenient(text: Any, problems: list[str]) -> tuple[list[MethodConfig], list[AttackConfig]]:
    """Methods and attacks of a suite that no longer parses as a whole, each one that still can."""
    from wmbench import suite as suite_module

    try:
        data = tomllib.loads(text) if isinstance(text, str) else {}
    except tomllib.TOMLDecodeError:
        return [], []
    settings = TextSettings()
    table = data.get("text")
    if isinstance(table, dict) and isinstance(table.get("lm"), str):
        settings = TextSettings(lm=table["lm"], max_new_tokens=table.get("max_new_tokens"))
    methods, attacks = [], []
    for kind, parse, out in (("methods", lambda t, w: suite_module._parse_method(t, w, settings), methods),
                             ("attacks", suite_module._parse_attack, attacks)):
        entries = data.get(kind)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            try:
                out.append(parse(entry, f"{kind}[{i}]"))
            except Exception as exc:
                problems.append(str(exc))
    return methods, attacks


def _rediscovered(suite: Suite | None) -> dict[str, str]:
    """Sample sources of a run stored before the runner kept them: discovered again from its suite."""
    if suite is None:
        return {}
    from wmbench.samples import discover_images, discover_prompts, discover_texts

    try:
        samples = (discover_images(suite.image_sources, suite.base_dir)
                   + discover_texts(suite.text_sources, suite.base_dir)
                   + discover_prompts(suite.prompt_sources, suite.base_dir))
    except Exception:
        return {}
    return {s.id: s.source for s in samples}


def attach_examples(views: Sequence[Any], records: Sequence[Record], meta: dict[str, Any],
                    run_dir: Path | None) -> list[Any]:
    """The method views with a gallery (image methods) or a text viewer (text methods).

    Never fails the report: a problem becomes the note of that method's example.
    """
    from dataclasses import replace

    from wmbench.report.gallery import Gallery, build_gallery
    from wmbench.report.textview import TextView, build_textview

    builders = {"image": ("gallery", build_gallery, Gallery), "text": ("textview", build_textview, TextView)}
    if not any(v.summary.modality in builders for v in views):
        return list(views)
    run = run_examples(records, meta, run_dir)
    out, first = [], set()
    for view in views:
        if view.summary.modality not in builders:
            out.append(view)
            continue
        name, build, kind = builders[view.summary.modality]
        try:
            example = build(run, view.summary.method)
        except Exception as exc:  # an unexpected failure costs the example, never the report
            example = kind(notes=(f"No example: {type(exc).__name__}: {exc}",))
        if name not in first:
            first.add(name)
            example = replace(example, first=True)
        out.append(replace(view, **{name: example}))
    return out
