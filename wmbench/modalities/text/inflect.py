"""English inflection for word substitution: which form a word is, and the same form of another lemma.

A substitution attack that swaps "cars" for a synonym must write "automobiles", not "automobile",
and "walked" must become "strolled". This module answers two questions for the thesaurus:

* :func:`tags_of` -- which Penn Treebank forms (``NNS``, ``VBD``, ``JJR``, ...) of a lemma spell
  a given word. A word can be several forms at once ("walked" is ``VBD`` and ``VBN``, "put" is
  ``VB``, ``VBD`` and ``VBN``); the caller keeps all of them.
* :func:`inflect_as` -- the one spelling of another lemma that is right for *every* one of those
  forms, or ``None`` when the forms disagree ("walked" -> "go" would need "went" or "gone",
  and without a tagger we cannot tell which: such a candidate is dropped).

The word lists come from LemmInflect (PyPI ``lemminflect``), which ships its lexicon (derived from
the NIH SPECIALIST lexicon) inside the wheel and needs no download. We chose it over rules plus
WordNet's exception lists because those lists map irregular forms to lemmas without saying which
form they are (``ate`` and ``eaten`` both just say ``eat``), and because the lexicon knows which
adjectives compare with "more" instead of "-er". Forms are never guessed for lemmas outside the
lexicon (mostly rare WordNet words): on a sample of running text that cost no coverage, and the
guesses were wrong often enough ("husbandmans") to matter.
"""

from __future__ import annotations

import functools
from types import ModuleType

from wmbench.errors import WmbenchError

INSTALL_HINT = "pip install lemminflect"

# WordNet part-of-speech letters (the thesaurus's vocabulary) -> Universal Dependencies POS
# (LemmInflect's vocabulary).
UPOS: dict[str, str] = {"n": "NOUN", "v": "VERB", "a": "ADJ", "r": "ADV"}

# The Penn forms we produce for each part of speech. VBP is left out on purpose: it differs from
# VB only for "be", which the thesaurus never substitutes. RBR/RBS are left out: adverbs in
# WordNet are listed in their base form and comparatives of adverbs are rare and irregular.
TAGS: dict[str, tuple[str, ...]] = {
    "n": ("NN", "NNS"),
    "v": ("VB", "VBZ", "VBD", "VBN", "VBG"),
    "a": ("JJ", "JJR", "JJS"),
    "r": ("RB",),
}
BASE_TAG: dict[str, str] = {"n": "NN", "v": "VB", "a": "JJ", "r": "RB"}


class InflectionUnavailable(WmbenchError):
    """LemmInflect is not installed; the message names the install command."""


@functools.cache
def _lemminflect() -> ModuleType:
    """Import LemmInflect once, turning its absence into an error that says how to fix it."""
    try:
        import lemminflect
    except ImportError as exc:  # pragma: no cover - exercised only on a machine without it
        raise InflectionUnavailable(
            f"inflecting substitutes needs the PyPI package 'lemminflect' ({INSTALL_HINT})"
        ) from exc
    return lemminflect


def available() -> bool:
    """True when LemmInflect can be imported (the thesaurus checks this before it is used)."""
    try:
        _lemminflect()
    except InflectionUnavailable:
        return False
    return True


@functools.lru_cache(maxsize=65536)
def forms(lemma: str, pos: str) -> dict[str, tuple[str, ...]]:
    """Spellings of each form of ``lemma`` as part of speech ``pos`` (``n``/``v``/``a``/``r``).

    The first spelling of each form is the preferred one. A form the lexicon does not list (a
    comparative of "beautiful"; any inflected form of a lemma the lexicon lacks) is absent from
    the dict rather than guessed: LemmInflect's rules for unknown words write "husbandmans" and
    "beautifuler". A lemma outside the lexicon keeps only its base form.
    """
    if pos not in TAGS:
        raise ValueError(f"unknown part of speech {pos!r}; expected one of {sorted(TAGS)}")
    li = _lemminflect()
    out: dict[str, tuple[str, ...]] = {}
    for tag in TAGS[pos]:
        spellings = tuple(li.getInflection(lemma, tag, inflect_oov=False))
        if not spellings and tag == BASE_TAG[pos]:
            spellings = (lemma,)
        if spellings:
            out[tag] = spellings
    return out


def tags_of(word: str, lemma: str, pos: str) -> frozenset[str]:
    """Every form of ``lemma`` (as ``pos``) that is spelled ``word``; empty if none is.

    An empty answer means the analysis "word is a form of lemma" does not hold (for example a
    detachment rule proposed a base the lexicon does not inflect that way), so the caller drops it.
    The base form counts as another form only where that form's *preferred* spelling is the same
    word ("sheep" is also a plural; "information" is not, although the lexicon also allows it
    as one): otherwise every mass noun would be ambiguous and never substituted.
    """
    lemma_forms = forms(lemma, pos)
    if word == lemma:
        return frozenset(tag for tag, spellings in lemma_forms.items()
                         if tag == BASE_TAG[pos] or spellings[0] == word)
    return frozenset(tag for tag, spellings in lemma_forms.items() if word in spellings)


def inflect_as(lemma: str, pos: str, tags: frozenset[str]) -> str | None:
    """The spelling of ``lemma`` that serves every form in ``tags``, or ``None`` if there is none.

    ``None`` when the lemma lacks one of the forms or its forms differ between the tags: the
    source word could have been any of them, so any single choice might break the sentence.
    """
    if not tags:
        return None
    lemma_forms = forms(lemma, pos)
    chosen: set[str] = set()
    for tag in tags:
        spellings = lemma_forms.get(tag)
        if not spellings:
            return None
        chosen.add(spellings[0])
    return chosen.pop() if len(chosen) == 1 else None


def lemma_pos(word: str) -> dict[str, tuple[str, ...]]:
    """Lexicon readings of ``word``: WordNet POS letter -> lemmas (used where WordNet is absent)."""
    li = _lemminflect()
    readings: dict[str, tuple[str, ...]] = {}
    for pos, upos in UPOS.items():
        lemmas = li.getAllLemmas(word, upos).get(upos)
        if lemmas:
            readings[pos] = tuple(lemmas)
    return readings


def is_base_form(word: str, pos: str) -> bool:
    """False when the lexicon knows ``word`` only as an inflected form of another lemma as ``pos``.

    WordNet lists some plural-only nouns as lemmas ("authorities" beside "government"); put in
    place of a singular they break agreement ("the authorities is"), so they are not substitutes.
    """
    upos = UPOS[pos]
    lemmas = _lemminflect().getAllLemmas(word, upos).get(upos)
    return not lemmas or word in lemmas


def in_lexicon(lemma: str, pos: str) -> bool:
    """True when the lexicon lists ``lemma`` as a lemma of ``pos`` (not merely as an inflected form)."""
    return bool(_lemminflect().getAllInflections(lemma, UPOS[pos]))
