"""One registry for modalities, watermarking methods and attacks, filled from three places.

1. Installed packages, through the entry-point groups ``wmbench.modalities``,
   ``wmbench.watermarkers`` and ``wmbench.attacks`` (wmbench's own built-ins are
   registered this way too). A modality entry point names a :class:`Modality`
   object (or a function returning one); the others name modules whose decorators
   register what they define.
2. Plugin folders given with ``--plugins DIR`` or a suite's ``plugins = [...]``:
   every ``*.py`` file in them is imported, and a module-level :class:`Modality`
   in one is registered.
3. Direct calls of :func:`wmbench.api.attack` / :func:`wmbench.api.watermarker`.

The registry imports only the leaf module ``wmbench.types``: the decorators in
``wmbench.api`` call into it, never the other way round.

A plugin that fails to import is reported by name in a warning and skipped; it never
takes other plugins down. Two different registrations under one name are an error,
because a suite naming that attack would otherwise be ambiguous.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from wmbench.errors import WmbenchError
from wmbench.types import AttackSpec, Modality, Watermarker

ATTACK_GROUP = "wmbench.attacks"
METHOD_GROUP = "wmbench.watermarkers"
MODALITY_GROUP = "wmbench.modalities"

_modalities: dict[str, Modality] = {}
_attacks: dict[str, AttackSpec] = {}
_methods: dict[str, type[Watermarker]] = {}
_method_sources: dict[str, str] = {}
_loading_source: list[str] = []
_loaded_entry_points = False
_loaded_folders: set[Path] = set()
_plugin_files: list[Path] = []  # every plugin-folder file imported, for the run manifest
_distributions: dict[str, str] = {}  # installed distributions that registered something -> version


class PluginWarning(UserWarning):
    """A plugin could not be loaded; the rest of the run goes on without it."""


class RegistryError(WmbenchError):
    """Two plugins claim one name, or a name is unknown."""


@contextlib.contextmanager
def _source(label: str) -> Iterator[None]:
    _loading_source.append(label)
    try:
        yield
    finally:
        _loading_source.pop()


def _current_source(default: str) -> str:
    return _loading_source[-1] if _loading_source else default


def register_modality(modality: Modality) -> Modality:
    if not isinstance(modality, Modality):
        raise RegistryError(f"a modality plugin must provide a wmbench.api.Modality, got {type(modality).__name__}")
    modality = replace(modality, source=modality.source or _current_source(modality.name))
    _claim("modality", modality.name, modality.source, _modalities.get(modality.name))
    _modalities[modality.name] = modality
    return modality


def register_attack(spec: AttackSpec) -> AttackSpec:
    spec = replace(spec, source=spec.source or _current_source(getattr(spec.apply, "__module__", "?")))
    _claim("attack", spec.name, spec.source, _attacks.get(spec.name))
    _attacks[spec.name] = spec
    return spec


def _claim(kind: str, name: str, source: str, existing: Any) -> None:
    """One name, one plugin: a second registration from elsewhere is an error naming both
    (the same source registering again, e.g. a module imported twice, is fine)."""
    if existing is not None and existing.source != source:
        raise RegistryError(f"{kind} {name!r} is registered twice: by {existing.source} and by {source}")


def register_method(cls: type[Watermarker]) -> None:
    source = _current_source(cls.__module__)
    if cls.name in _methods and _method_sources[cls.name] != source:
        raise RegistryError(
            f"method {cls.name!r} is registered twice: by {_method_sources[cls.name]} and by {source}"
        )
    _methods[cls.name] = cls
    _method_sources[cls.name] = source


def _load_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for group in (MODALITY_GROUP, METHOD_GROUP, ATTACK_GROUP):
        for ep in importlib.metadata.entry_points(group=group):
            dist = ep.dist.name if ep.dist is not None else "?"
            if ep.dist is not None:
                _distributions[dist] = ep.dist.version
            with _source(f"{dist}:{ep.value}"):
                try:
                    loaded = ep.load()
                    if group == MODALITY_GROUP:
                        register_modality(loaded() if callable(loaded) and not isinstance(loaded, Modality)
                                          else loaded)
                except RegistryError:
                    raise
                except Exception as exc:  # a broken plugin is a warning, not a crash
                    warnings.warn(
                        f"plugin {ep.value!r} from {dist} failed to import and is skipped: "
                        f"{type(exc).__name__}: {exc}",
                        PluginWarning,
                        stacklevel=2,
                    )


def load_plugin_folder(folder: str | Path) -> list[str]:
    """Import every ``*.py`` in ``folder``; return the files that failed (already warned)."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"plugin folder not found: {folder}")
    _load_entry_points()
    failed: list[str] = []
    if folder in _loaded_folders:
        return failed
    _loaded_folders.add(folder)
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        module_name = f"wmbench_plugin_{path.stem}_{digest}"
        _plugin_files.append(path)
        with _source(str(path)):
            try:
                spec = importlib.util.spec_from_file_location(module_name, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
                for value in list(vars(module).values()):
                    if isinstance(value, Modality):
                        register_modality(value)
            except RegistryError:
                raise
            except Exception as exc:
                sys.modules.pop(module_name, None)
                failed.append(str(path))
                warnings.warn(
                    f"plugin {path} failed to import and is skipped: {type(exc).__name__}: {exc}",
                    PluginWarning,
                    stacklevel=2,
                )
    return failed


def plugin_files() -> list[Path]:
    """Plugin-folder files imported so far (those that failed too: they were tried)."""
    return list(_plugin_files)


def plugin_distributions() -> dict[str, str]:
    """Installed distributions that provide entry points, with their versions."""
    _load_entry_points()
    return dict(sorted(_distributions.items()))


def modalities() -> dict[str, Modality]:
    _load_entry_points()
    return dict(sorted(_modalities.items()))


def get_modality(name: str) -> Modality:
    known = modalities()
    if name not in known:
        raise RegistryError(f"unknown modality {name!r}; valid: {', '.join(known) or 'none registered'}")
    return known[name]


def attacks() -> dict[str, AttackSpec]:
    _load_entry_points()
    return dict(sorted(_attacks.items()))


def methods() -> dict[str, type[Watermarker]]:
    _load_entry_points()
    return dict(sorted(_methods.items()))


def method_source(name: str) -> str:
    return _method_sources.get(name, "?")


def get_attack(name: str) -> AttackSpec:
    known = attacks()
    if name not in known:
        raise RegistryError(f"unknown attack {name!r}; valid: {', '.join(known)}")
    return known[name]


def get_method(name: str) -> type[Watermarker]:
    known = methods()
    if name not in known:
        raise RegistryError(f"unknown method {name!r}; valid: {', '.join(known)}")
    return known[name]


_instances: dict[tuple[str, tuple[tuple[str, Any], ...]], Watermarker] = {}


def method_instance(name: str, params: tuple[tuple[str, Any], ...] = ()) -> Watermarker:
    """One instance per process and settings: methods may load models in ``__init__``."""
    key = (name, tuple(sorted(params)))
    if key not in _instances:
        _instances[key] = get_method(name)(**dict(params))
    return _instances[key]
