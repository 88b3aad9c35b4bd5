"""Detector-side normalisation: format characters out, look-alike letters back to Latin."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from wmbench import registry
from wmbench.modalities.text.confusables import is_lookalike, skeleton
from wmbench.modalities.text.corpus import human_texts, prompts
from wmbench_attacks.text_chars import HOMOGLYPHS, homoglyph, zero_width

TEXT = next(iter(human_texts().values()))


def test_every_homoglyph_the_attack_uses_maps_back() -> None:
    for latin, fakes in HOMOGLYPHS.items():
        for fake in fakes:
            assert is_lookalike(fake), (latin, fake)
            assert skeleton(fake) == latin, (latin, fake, skeleton(fake))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.1, 0.5, 1.0]))
def test_skeleton_undoes_both_attacks_on_real_text(seed: int, strength: float) -> None:
    for attack in (homoglyph, zero_width):
        attacked = attack(TEXT, strength, np.random.default_rng(seed))
        assert attacked != TEXT
        assert skeleton(attacked) == skeleton(TEXT) == TEXT


def test_plain_text_in_other_scripts_keeps_its_letters_outside_the_table() -> None:
    assert skeleton("naïve café — ½ “quoted”") == "naïve café — ½ “quoted”"
    assert skeleton("soft\u00adhyphen and\u200bzero\ufeffwidth") == "softhyphen andzerowidth"


def test_normalizing_detector_recovers_the_mark_the_raw_one_loses() -> None:
    raw = registry.method_instance("kgw", (("max_new_tokens", 150),))
    norm = registry.method_instance("kgw", (("max_new_tokens", 150), ("normalize", True)))
    marked = raw.embed(prompts()[1], "k")
    attacked = zero_width(homoglyph(marked, 1.0, np.random.default_rng(1)), 1.0, np.random.default_rng(2))
    assert raw.detect(marked, "k").p_value < 1e-6
    assert raw.detect(attacked, "k").p_value > 0.01
    assert norm.detect(attacked, "k").p_value == raw.detect(marked, "k").p_value
