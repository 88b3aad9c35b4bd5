"""A reader of the WordNet 3.0 database files (wndb(5WN) format), as a :class:`Thesaurus`.

The reader is ours and small: NLTK's WordNet reader wants its own corpus layout (a
``lexnames`` file the Debian package does not ship) and NLTK brings nothing else we need.
Loading parses the four ``index.*`` files, the exception lists and the tag counts (~0.4 s);
synsets are read on demand from the ``data.*`` files by their byte offset (that is what a
WordNet synset offset is), via mmap.
"""

from __future__ import annotations

import mmap
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from wmbench.modalities.text.thesaurus_base import POS_LETTERS, Thesaurus, ThesaurusUnavailable

WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_INSTALL = "apt-get install wordnet-base"

_POS_FILE = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
# Sense keys number the synset types; 3 (head adjective) and 5 (satellite) are both adjectives.
_SS_TYPE_NUMBER = {"n": 1, "v": 2, "a": 3, "r": 4, "s": 5}
_SS_NUMBER_POS = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}

# WordNet's rules of detachment (morphy(7WN)): suffix -> ending, tried when the word is not in the
# exception list. Adverbs have none.
_DETACHMENT: dict[str, tuple[tuple[str, str], ...]] = {
    "n": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
          ("men", "man"), ("ies", "y")),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"),
          ("ing", "")),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}

_ADJ_MARKER = re.compile(r"\([a-z]+\)$")  # data.adj writes syntactic markers as "word(p)"


@dataclass(frozen=True, slots=True)
class Synset:
    """One WordNet synset as stored in a ``data.*`` line (the parts this module needs)."""

    offset: int
    pos: str  # n, v, a or r (satellite adjectives are "a" here; see ``ss_type``)
    ss_type: str  # n, v, a, s or r
    lex_filenum: int
    words: tuple[str, ...]  # as the lexicographer wrote them: case kept, "_" for spaces
    lex_ids: tuple[int, ...]
    head_offset: int | None  # satellites: the head adjective synset they are similar to
    gloss: str


class WordNet(Thesaurus):
    """A reader of the WordNet 3.0 database files (wndb(5WN) format) and a :class:`Thesaurus`."""

    def __init__(self, directory: Path = WORDNET_DIR) -> None:
        super().__init__()
        self.directory = Path(directory)
        missing = [f for p in _POS_FILE.values() for f in (f"index.{p}", f"data.{p}")
                   if not (self.directory / f).is_file()]
        if missing:
            raise ThesaurusUnavailable(
                f"WordNet database incomplete in {self.directory} (missing {', '.join(missing)}); "
                f"install it with `{WORDNET_INSTALL}`")
        self.version = self._read_version()
        debian = self.directory == WORDNET_DIR and Path("/usr/share/doc/wordnet-base").is_dir()
        self.name = f"WordNet {self.version} ({'Debian wordnet-base' if debian else self.directory})"
        self._index: dict[str, dict[str, tuple[int, ...]]] = {p: self._read_index(p) for p in POS_LETTERS}
        self._exceptions: dict[str, dict[str, tuple[str, ...]]] = {p: self._read_exceptions(p) for p in POS_LETTERS}
        self._sense_counts, self._lemma_counts = self._read_counts()
        self._data: dict[str, mmap.mmap] = {}
        self._synsets: dict[tuple[str, int], Synset] = {}

    def _read_version(self) -> str:
        with open(self.directory / "data.noun", "rb") as f:
            head = f.read(4096).decode("ascii", "replace")
        match = re.search(r"WordNet (\d+(?:\.\d+)+)", head)
        return match.group(1) if match else "(unknown version)"

    def _read_index(self, pos: str) -> dict[str, tuple[int, ...]]:
        """lemma -> synset offsets in sense order (index lines: lemma pos n p_cnt ptrs... sense_cnt tag_cnt offsets)."""
        table: dict[str, tuple[int, ...]] = {}
        with open(self.directory / f"index.{_POS_FILE[pos]}", encoding="utf-8") as f:
            for line in f:
                if line.startswith(" "):  # licence header
                    continue
                fields = line.split()
                n_synsets, n_pointers = int(fields[2]), int(fields[3])
                start = 6 + n_pointers
                table[fields[0]] = tuple(map(int, fields[start:start + n_synsets]))
        return table

    def _read_exceptions(self, pos: str) -> dict[str, tuple[str, ...]]:
        table: dict[str, tuple[str, ...]] = {}
        path = self.directory / f"{_POS_FILE[pos]}.exc"
        if path.is_file():
            with open(path, encoding="utf-8") as f:
                for line in f:
                    fields = line.split()
                    if len(fields) >= 2:
                        table[fields[0]] = tuple(fields[1:])
        return table

    def _read_counts(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """Tag counts per sense key and per (lemma, pos) from ``cntlist.rev`` (absent: no counts).

        The Debian file is older than the data files: about 5% of its sense keys name senses that
        no longer exist. Those still count toward their lemma's part of speech, which is all the
        reading rule needs; sense ranking then falls back on WordNet's sense order.
        """
        senses: dict[str, int] = {}
        lemmas: defaultdict[tuple[str, str], int] = defaultdict(int)
        path = self.directory / "cntlist.rev"
        if path.is_file():
            with open(path, encoding="utf-8") as f:
                for line in f:
                    fields = line.split()
                    if len(fields) != 3:
                        continue
                    key, count = fields[0], int(fields[2])
                    senses[key] = count
                    lemma, _, rest = key.partition("%")
                    lemmas[(lemma, _SS_NUMBER_POS.get(rest[:1], "?"))] += count
        return senses, dict(lemmas)

    # -- synsets -----------------------------------------------------------------------------------

    def synset(self, pos: str, offset: int) -> Synset:
        """The synset at byte ``offset`` of ``data.<pos>`` (parsed once, then cached)."""
        key = (pos, offset)
        cached = self._synsets.get(key)
        if cached is not None:
            return cached
        data = self._data.get(pos)
        if data is None:
            with open(self.directory / f"data.{_POS_FILE[pos]}", "rb") as f:
                data = self._data[pos] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        line = data[offset:data.find(b"\n", offset)].decode("utf-8")
        head, _, gloss = line.partition("|")
        fields = head.split()
        if int(fields[0]) != offset:
            raise ValueError(f"{self.directory}/data.{_POS_FILE[pos]}: no synset at offset {offset}")
        n_words = int(fields[3], 16)
        words = tuple(_ADJ_MARKER.sub("", w) for w in fields[4:4 + 2 * n_words:2])
        lex_ids = tuple(int(x, 16) for x in fields[5:5 + 2 * n_words:2])
        n_pointers = int(fields[4 + 2 * n_words])
        pointers = fields[5 + 2 * n_words:5 + 2 * n_words + 4 * n_pointers]
        head_offset = None
        if fields[2] == "s":
            head_offset = next((int(pointers[i + 1]) for i in range(0, len(pointers), 4)
                                if pointers[i] == "&"), None)
        synset = Synset(offset, pos, fields[2], int(fields[1]), words, lex_ids, head_offset, gloss.strip())
        self._synsets[key] = synset
        return synset

    def synsets(self, lemma: str, pos: str) -> list[Synset]:
        """The senses of ``lemma`` (a base form) as ``pos``, most frequent first."""
        return [self.synset(pos, off) for off in self._index[pos].get(lemma.lower().replace(" ", "_"), ())]

    def sense_count(self, lemma: str, synset: Synset) -> int:
        """How often ``lemma`` was tagged in ``synset`` (0 if never, or if the count file is stale)."""
        low = lemma.lower()
        i = next((i for i, w in enumerate(synset.words) if w.lower() == low), None)
        if i is None:
            return 0
        key = f"{low}%{_SS_TYPE_NUMBER[synset.ss_type]}:{synset.lex_filenum:02d}:{synset.lex_ids[i]:02d}:"
        if synset.head_offset is not None:
            head = self.synset("a", synset.head_offset)
            key += f"{head.words[0].lower()}:{head.lex_ids[0]:02d}"
        else:
            key += ":"
        return self._sense_counts.get(key, 0)

    # -- morphology --------------------------------------------------------------------------------

    def morphy(self, word: str, pos: str) -> list[str]:
        """Base forms of ``word`` found in WordNet as ``pos``, WordNet's morphy(7WN) way.

        The word itself if WordNet has it; then the exception list if it lists the word (irregular
        forms: "went" -> "go"), otherwise every rule of detachment whose result WordNet has.
        """
        low = word.lower()
        index = self._index[pos]
        found: dict[str, None] = {}
        if low in index:
            found[low] = None
        exceptions = self._exceptions[pos].get(low)
        if exceptions:
            for base in exceptions:
                if base in index:
                    found.setdefault(base)
        else:
            for suffix, ending in _DETACHMENT[pos]:
                if low.endswith(suffix) and len(low) > len(suffix):
                    base = low[: len(low) - len(suffix)] + ending
                    if base in index:
                        found.setdefault(base)
        return list(found)

    # -- Thesaurus hooks -----------------------------------------------------------------------------

    def _lemmas(self, word: str, pos: str) -> list[str]:
        return self.morphy(word, pos)

    def _weight(self, lemma: str, pos: str) -> int:
        return self._lemma_counts.get((lemma, pos), 0)

    def _sense_synonyms(self, lemma: str, pos: str, dominant: bool) -> list[str]:
        senses = self.synsets(lemma, pos)
        if dominant and senses:
            counts = [self.sense_count(lemma, s) for s in senses]
            total = sum(counts)
            if total:
                senses = [s for s, c in zip(senses, counts) if c >= self.min_sense_share * total]
            else:
                senses = senses[:1]
        out: list[str] = []
        for synset in senses:
            ranked = sorted(range(len(synset.words)),
                            key=lambda i: -self.sense_count(synset.words[i], synset))
            out.extend(synset.words[i] for i in ranked)
        return out
