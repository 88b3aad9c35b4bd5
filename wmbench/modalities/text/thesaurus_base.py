"""The substitution rule every synonym source shares: which words are replaced, and by what.

A source (:mod:`~wmbench.modalities.text.thesaurus_wordnet`,
:mod:`~wmbench.modalities.text.thesaurus_moby`) only answers lookups; the rule below lives
here once, so both sources substitute alike and the tests check it in one place.

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

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from wmbench.errors import WmbenchError
from wmbench.modalities.text import inflect

POS_LETTERS: tuple[str, ...] = ("n", "v", "a", "r")

_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")
CANDIDATE = re.compile(r"[a-z]+(?:-[a-z]+)*")  # lower case: proper nouns ("Ford") never replace a word

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
                        and CANDIDATE.fullmatch(synonym) and inflect.is_base_form(synonym, pos)):
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
