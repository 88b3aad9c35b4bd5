"""A stored run as the report, the verdict and the export see it: the store, nothing else.

Everything comes from the run folder's ``results.sqlite``: the records, the metadata
and the manifest the runner wrote before the first cell ran (see
:mod:`wmbench.manifest`). Suite files, plugin folders and sample folders may have
moved or been deleted since; a report rebuilt from here shows the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from wmbench.manifest import ModalityInfo, modality_infos
from wmbench.store import Record, Store


@dataclass
class StoredRun:
    records: list[Record]
    meta: dict[str, Any]
    run_dir: Path | None = None
    label: str = ""
    manifest: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.manifest is None:
            manifest = self.meta.get("manifest")
            self.manifest = manifest if isinstance(manifest, dict) else None
        self.modalities: dict[str, ModalityInfo] = modality_infos(self.manifest)
        self.records = _in_plan_order(self.records, self.manifest)

    @classmethod
    def load(cls, run_dir: Path, label: str = "") -> "StoredRun":
        with Store(Path(run_dir), create=False) as store:
            return cls(list(store.records()), store.meta(), Path(run_dir), label)

    @property
    def attacks(self) -> list[dict[str, Any]]:
        """The manifest's attacks; a run stored before manifests existed gets the tags the
        installed attacks declare, by name (so its prefix sweep still gives tokens needed)."""
        if self.manifest is not None:
            return list(self.manifest.get("attacks", []))
        from wmbench import registry

        installed = registry.attacks()
        return [{"label": name, "tags": installed[name].tags, "unit": installed[name].unit}
                for name in dict.fromkeys(r.attack for r in self.records) if name in installed]

    def attack_unit(self, label: str) -> str:
        """What the attack's strengths count, as it declared ("" when it did not)."""
        return next((str(a.get("unit") or "") for a in self.attacks if a.get("label") == label), "")

    def attack_tags(self, label: str) -> dict[str, Any]:
        return next((a.get("tags", {}) for a in self.attacks if a.get("label") == label), {})

    @property
    def prefix_attacks(self) -> frozenset[str]:
        """Attacks whose cells detect on prefixes of the marked item (tag ``prefix``)."""
        return frozenset(a["label"] for a in self.attacks if a.get("tags", {}).get("prefix"))

    def modality(self, name: str) -> ModalityInfo:
        """What the run declared about ``name``; a modality it never declared (records
        written by hand) gets a bare description: its title, no metrics."""
        return self.modalities.get(name) or ModalityInfo.from_entry({"name": name})

    def method_entry(self, label: str) -> dict[str, Any] | None:
        return next((m for m in (self.manifest or {}).get("methods", []) if m.get("label") == label), None)

    def generates(self, method_label: str) -> bool:
        entry = self.method_entry(method_label)
        return bool(entry and entry.get("generates"))


def _in_plan_order(records: list[Record], manifest: dict[str, Any] | None) -> list[Record]:
    """Records sorted (stably) by the suite's order of methods and attacks, so that every
    "first seen" order downstream, and every tie broken by it, is the plan's and not the
    order in which parallel workers happened to finish."""
    if not manifest:
        return records
    methods = {m["label"]: i for i, m in enumerate(manifest.get("methods", []))}
    attacks = {a["label"]: i + 1 for i, a in enumerate(manifest.get("attacks", []))}
    return sorted(records, key=lambda r: (methods.get(r.method, len(methods)), attacks.get(r.attack, 0)))


def records_only(records: Sequence[Record], meta: dict[str, Any] | None = None, label: str = "") -> StoredRun:
    """A run made of records alone (tests, or a run whose folder is gone)."""
    return StoredRun(list(records), dict(meta or {}), None, label)
