"""Reading text samples: UTF-8 only, bounded in size, never empty.

Text samples are small (a paragraph, a prompt), so a file over ``MAX_TEXT_BYTES``
is refused rather than streamed: it is almost certainly the wrong file, and reading
it whole in every worker would cost memory for nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from wmbench.errors import SampleError

MAX_TEXT_BYTES = 1_000_000


def load_text(source: str) -> str:
    """The text of a file, or of one line of it (``path#L3``, how prompts are named).

    Raises :class:`SampleError` with a one-line reason.
    """
    path, _, line = source.rpartition("#L") if "#L" in source else (source, "", "")
    text = _read_file(path)
    if line:
        lines = text.splitlines()
        n = int(line)
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
