"""Training text of the bench's default language model, and its on-disk cache.

Nothing is downloaded. The corpus is, in this order:

1. (held out) ``samples/texts/human/*.txt`` are *not* trained on: they are the human
   negatives and the substrate of the lexical mark, and their perplexity must be
   measured out of sample, like any text a user brings.
2. ``samples/texts/prompts.txt``: one generation prompt per line, each its own
   sequence.
3. The English help texts shipped with CPython in ``pydoc_data.topics.topics`` (the
   language reference behind ``help("if")``, ~465 KB in 3.11).
4. The docstrings (module, class, function) of the standard library's top-level
   modules (``Lib/*.py``, ~170 files), read with ``ast`` and never imported.

Parts 3 and 4 are cleaned to prose by the same filter: reST headings, grammar
productions, tables, doctest and code blocks, and footnotes are dropped;
``**bold**``/``*emphasis*`` markup and footnote marks are removed; a quoted literal
that is a plain name (``"__init__()"``) keeps its name, and a sentence with any other
quoted literal (operators, format specs) is dropped; a paragraph repeated elsewhere
in the same part is kept once. About 120k words (143k tokens) with CPython 3.11, most of it
technical English: the model's everyday vocabulary comes from part 2 only, so its
generations read technical; the marks' statistics do not depend on that.

Samples come from ``$WMBENCH_TEXT_SAMPLES`` if set, else ``samples/texts`` at the
repository root; if neither exists (an installed wheel without them) the corpus is
parts 3 and 4 alone. Parts 3 and 4 differ between Python versions, so the default
model does too (one cache file per variant).

``default_lm`` trains once per corpus and then loads the ``.npz`` from
``$WMBENCH_CACHE`` (default ``~/.cache/wmbench``). The cache key hashes the raw
inputs that fix the corpus text exactly (sample files, the pydoc topics, the bytes
of every stdlib source read), the Python minor version, ``CODE_VERSION``, the model
format, the order and ``min_count``: hashing the inputs instead of the cleaned text
keeps a warm call near 0.1 s, where building the text takes over a second. The
file is written to a temporary name and renamed into place, so worker processes
racing on a cold cache each either train or read a complete file, never a partial
one.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sys
import sysconfig
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

from wmbench.modalities.text.ngram import FORMAT_VERSION, NgramLM

# Bump when the cleaning or the training changes, so stale caches are not reused.
CODE_VERSION = "2"  # 2: human samples held out of training
DEFAULT_ORDER = 3
DEFAULT_MIN_COUNT = 2

_REPO_SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "texts"

_UNDERLINE = re.compile(r"^\s*([*=\-~^#])\1{2,}\s*$")
_CODE_START = (">>>", "...", "+-", "|", "#", "@")
_CODE_CHARS = re.compile(r"[=<>{}\[\]#@~^|\\]")
_CODE_LINE = re.compile(
    r"(?:def|class|import|from|return|if|for|while|try|with|async|await|raise|lambda|print|del)\b[^.]*[:(]")
_BULLET = re.compile(r"^(?:[*\-\u2022]|\d+\.|\(\d+\))\s+")
_QUOTED = re.compile(r'"([^"\n]*)"')
_PLAIN_NAME = re.compile(r"[A-Za-z_][\w.]*(?:\(\))?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
_PROSE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:'\u2019()-_\"?!")


def samples_dir() -> Path:
    """Folder with ``human/*.txt`` and ``prompts.txt``: ``$WMBENCH_TEXT_SAMPLES`` or the repo's."""
    env = os.environ.get("WMBENCH_TEXT_SAMPLES")
    return Path(env) if env else _REPO_SAMPLES


def human_texts(folder: Path | None = None) -> dict[str, str]:
    """``{file name: text}`` of the human-written paragraphs, sorted by name."""
    folder = (folder or samples_dir()) / "human"
    if not folder.is_dir():
        return {}
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))}


def prompts(folder: Path | None = None) -> list[str]:
    """Generation prompts, one per non-blank line of ``prompts.txt``."""
    path = (folder or samples_dir()) / "prompts.txt"
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _strip_markup(text: str) -> str:
    """One line of prose from a block: list bullets, bold/emphasis, footnote marks removed."""
    text = re.sub(r"(?<=[a-z])- (?=[a-z])", "-", " ".join(text.split()))  # "re-\n raises"
    text = _BULLET.sub("", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"\1", text)
    text = re.sub(r"\s*\[\d+\]", "", text)
    return text.replace("“", '"').replace("”", '"')


def _name_only(m: re.Match[str]) -> str:
    inner = m.group(1)
    return inner.removesuffix("()") if _PLAIN_NAME.fullmatch(inner) else m.group(0)


def _inline(text: str) -> str:
    """Sentences of marked-up-free ``text`` with plain-name literals unquoted; others dropped."""
    kept = []
    for sentence in _SENTENCE.split(text):
        sentence = _QUOTED.sub(_name_only, sentence)
        if not any(c in sentence for c in '"*`') and "::" not in sentence:
            kept.append(sentence)
    return " ".join(kept)


def _is_prose(text: str) -> bool:
    """Heuristic on markup-free text: enough words, sentence-like end, mostly prose characters."""
    if len(text.split()) < 6 or text[-1] not in ".:!?)":
        return False
    bare = _QUOTED.sub("x", text)  # literals are judged later, sentence by sentence
    if _CODE_CHARS.search(bare) or _CODE_LINE.match(bare):
        return False
    return sum(c in _PROSE_CHARS for c in bare) / len(bare) >= 0.95


def clean_help_text(raw: str) -> list[str]:
    """Prose paragraphs of one help topic or docstring (see the module docstring)."""
    raw = raw.split("-[ Footnotes ]-")[0]
    lines = raw.splitlines()
    keep = [True] * len(lines)
    for i, line in enumerate(lines):
        if _UNDERLINE.match(line):
            keep[i] = False
            if i > 0:
                keep[i - 1] = False  # the heading above its underline
    blocks: list[list[str]] = [[]]
    for line, k in zip(lines, keep, strict=True):
        if not line.strip() or not k:
            if blocks[-1]:
                blocks.append([])
        else:
            blocks[-1].append(line)
    out = []
    for block in blocks:
        stripped = [line.strip() for line in block]
        if not block or any(x.startswith(_CODE_START) or "::=" in x for x in stripped):
            continue
        text = _strip_markup(" ".join(stripped))
        if _is_prose(text):
            para = _inline(text)
            if len(para.split()) >= 6:
                out.append(para)
    return out


def _pydoc_topics() -> dict[str, str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions split pydoc_data into another package
        return {}
    return dict(topics)


def pydoc_paragraphs() -> list[str]:
    """Cleaned prose of every ``pydoc_data`` help topic, topics in sorted order, without repeats."""
    topics = _pydoc_topics()
    # Several topics repeat whole sections (e.g. "function" inside "compound"); a
    # paragraph is kept once so repeats do not inflate its n-gram counts.
    paras = (p for key in sorted(topics) for p in clean_help_text(topics[key]))
    return list(dict.fromkeys(paras))


def stdlib_sources() -> list[Path]:
    """The standard library's top-level modules (``Lib/*.py``), sorted by name."""
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


def docstring_paragraphs(paths: Iterable[Path] | None = None) -> list[str]:
    """Cleaned prose of the docstrings in ``paths`` (default: ``stdlib_sources()``), without repeats.

    Sources are parsed with ``ast``, never imported, so no module code runs. The
    default set takes over a second to parse, so it is parsed once per process.
    """
    if paths is None:
        return list(_stdlib_docstrings())
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    out: list[str] = []
    for path in paths:
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, kinds) and (doc := ast.get_docstring(node)):
                out.extend(clean_help_text(doc))
    return list(dict.fromkeys(out))


@cache
def _stdlib_docstrings() -> tuple[str, ...]:
    return tuple(docstring_paragraphs(stdlib_sources()))


def corpus_texts(folder: Path | None = None) -> list[str]:
    """The default model's training texts, in a fixed order (see the module docstring)."""
    return [*prompts(folder), *pydoc_paragraphs(), *docstring_paragraphs()]


def corpus_inputs(folder: Path | None = None) -> Iterator[str | bytes]:
    """The raw inputs that ``corpus_texts(folder)`` is built from, for the cache key."""
    yield "prompts"
    yield from prompts(folder)
    for key, text in sorted(_pydoc_topics().items()):
        yield f"pydoc/{key}"
        yield text
    for path in stdlib_sources():
        yield f"stdlib/{path.name}"
        try:
            yield path.read_bytes()
        except OSError:
            yield b""


def corpus_digest(parts: Iterable[str | bytes], order: int, min_count: int) -> str:
    """Hash of ``parts`` (in order), the training settings, the code versions and Python's."""
    py = "{}.{}".format(*sys.version_info[:2])
    h = hashlib.sha256(f"wmbench-ngram|{CODE_VERSION}|{FORMAT_VERSION}|{py}|{order}|{min_count}".encode())
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$WMBENCH_CACHE`` or ``~/.cache/wmbench``."""
    env = os.environ.get("WMBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "wmbench"


def default_lm(cache_dir: Path | None = None, order: int = DEFAULT_ORDER,
               min_count: int = DEFAULT_MIN_COUNT) -> NgramLM:
    """The bench's LM: loaded from the cache, or trained on ``corpus_texts()`` and cached.

    A cache file that cannot be read is retrained over; a cache folder that cannot
    be written only costs a warning (the model is still returned).
    """
    digest = corpus_digest(corpus_inputs(), order, min_count)[:20]
    path = Path(cache_dir or default_cache_dir()) / f"ngram-o{order}-m{min_count}-{digest}.npz"
    if path.is_file():
        try:
            return NgramLM.load(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            warnings.warn(f"retraining the default LM: cached {path} unreadable ({exc})", stacklevel=2)
    texts = corpus_texts()
    lm = NgramLM.train(texts, order=order, min_count=min_count)
    try:
        lm.save(path)
    except OSError as exc:
        warnings.warn(f"default LM not cached: cannot write {path} ({exc})", stacklevel=2)
    return lm


__all__ = [
    "CODE_VERSION", "clean_help_text", "corpus_digest", "corpus_inputs", "corpus_texts",
    "default_cache_dir", "default_lm", "docstring_paragraphs", "human_texts", "prompts",
    "pydoc_paragraphs", "samples_dir", "stdlib_sources",
]
