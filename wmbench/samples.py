"""Samples, whatever their modality: the one parser of sample sources and the one discovery.

A suite's ``[samples]`` table has one field per sample kind a registered modality
declares (``images``, ``texts``, ``prompts``, ...); each modality turns its entries into
:class:`~wmbench.types.Sample` objects. Discovery only lists files (cheap, in the main
process); loading happens in the worker cell that needs the item, so one corrupt file
costs that sample's cells, not the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from wmbench.errors import SuiteError
from wmbench.types import Sample

if TYPE_CHECKING:
    from wmbench.suite import Suite

LINE_MARK = "#L"  # "path#L3": line 3 of a file, how one-per-line samples (prompts) are named


def parse_source(source: str) -> tuple[str, int | None]:
    """``"notes.txt#L3"`` -> ("notes.txt", 3); a plain path -> (path, None)."""
    path, mark, line = source.rpartition(LINE_MARK)
    if mark and line.isdigit():
        return path, int(line)
    return source, None


def line_source(path: Path | str, line: int) -> str:
    return f"{path}{LINE_MARK}{line}"


def source_file(source: str) -> str:
    """The file a source lives in (a line source's file)."""
    return parse_source(source)[0]


def files_in(path: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """``path`` itself, or the files with one of ``suffixes`` in the folder ``path``, sorted."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SuiteError(f"{path}: folder or file not found")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    if not files:
        raise SuiteError(f"{path}: no {what} ({', '.join(suffixes)}) in this folder")
    return files


def unique_ids(samples: list[Sample]) -> list[Sample]:
    """Drop a source listed twice; number repeated ids (``a.png``, ``a.png#2``)."""
    seen: dict[str, int] = {}
    sources: set[str] = set()
    out = []
    for s in samples:
        if s.source in sources:
            continue  # the same file listed twice counts once
        sources.add(s.source)
        n = seen.get(s.id, 0)
        seen[s.id] = n + 1
        out.append(s if n == 0 else Sample(id=f"{s.id}#{n + 1}", modality=s.modality, source=s.source,
                                           role=s.role))
    return out


def discover(suite: "Suite") -> list[Sample]:
    """Every sample a suite names, in the order of the modalities' sample kinds."""
    from wmbench import registry

    samples: list[Sample] = []
    for modality in registry.modalities().values():
        for kind in modality.sample_kinds:
            sources = suite.sources.get(kind.field, ())
            if sources:
                samples += kind.discover(tuple(sources), suite.base_dir)
    return samples
