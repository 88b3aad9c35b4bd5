"""Text samples: discovery of human texts and prompts, reading (UTF-8 only, bounded in
size, never empty) and the cache format.

Text samples are small (a paragraph, a prompt), so a file over ``MAX_TEXT_BYTES``
is refused rather than streamed: it is almost certainly the wrong file, and reading
it whole in every worker would cost memory for nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from wmbench.errors import SampleError, SuiteError
from wmbench.samples import files_in, line_source, parse_source, unique_ids
from wmbench.types import Sample

MAX_TEXT_BYTES = 1_000_000
TEXT_SUFFIXES = (".txt",)


def discover_texts(sources: tuple[str, ...], base_dir: Path) -> list[Sample]:
    """Human texts: ``builtin:texts`` (samples/texts/human) and .txt files or folders."""
    from wmbench.modalities.text.corpus import samples_dir

    samples: list[Sample] = []
    for source in sources:
        folder = samples_dir() / "human" if source == "builtin:texts" else (base_dir / source).resolve()
        for f in files_in(folder, TEXT_SUFFIXES, ".txt files"):
            samples.append(Sample(id=f.name, modality="text", source=str(f)))
    return unique_ids(samples)


def discover_prompts(sources: tuple[str, ...], base_dir: Path) -> list[Sample]:
    """Prompts: one per line of a .txt file, or one per .txt file of a folder."""
    from wmbench.modalities.text.corpus import samples_dir

    samples: list[Sample] = []
    for source in sources:
        path = samples_dir() / "prompts.txt" if source == "builtin:prompts" else (base_dir / source).resolve()
        if path.is_dir():
            for f in files_in(path, TEXT_SUFFIXES, ".txt files"):
                samples.append(Sample(id=f.name, modality="text", source=str(f), role="prompt"))
            continue
        try:
            lines = path.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SuiteError(f"{path}: cannot read prompts: {exc}") from None
        for n, line in enumerate(lines, start=1):
            if line.strip():
                samples.append(Sample(id=f"{path.stem}:{n}", modality="text", source=line_source(path, n),
                                      role="prompt"))
    return unique_ids(samples)


def load_text(source: str) -> str:
    """The text of a file, or of one line of it (``path#L3``, how prompts are named).

    Raises :class:`SampleError` with a one-line reason.
    """
    path, n = parse_source(source)
    text = _read_file(path)
    if n is not None:
        lines = text.splitlines()
        if not 1 <= n <= len(lines) or not lines[n - 1].strip():
            raise SampleError(f"{Path(path).name}: line {n} is not a prompt (missing or blank)")
        return lines[n - 1]
    return text


def _read_file(path: str) -> str:
    name = Path(path).name
    try:
        size = os.path.getsize(path)
        if size > MAX_TEXT_BYTES:
            raise SampleError(f"{name}: {size:,} bytes is over the {MAX_TEXT_BYTES:,}-byte limit for a text sample")
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SampleError(f"{name}: file not found: {path}") from None
    except OSError as exc:
        raise SampleError(f"{name}: cannot read: {exc.strerror}") from None
    if b"\x00" in data:
        raise SampleError(f"{name}: binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SampleError(f"{name}: not UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None
    if not text.strip():
        raise SampleError(f"{name}: empty text" if not text else f"{name}: whitespace only")
    return text


def save_text(text: str, path: Path) -> None:
    """Atomic write (rename), so a killed worker never leaves half a file."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
