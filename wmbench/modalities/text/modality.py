"""The text modality as the core sees it: one :class:`~wmbench.types.Modality` object.

Registered through the ``wmbench.modalities`` entry point exactly as a third-party
modality would be. It owns the suite's ``[text]`` table (which LM generates and
scores perplexity, how long generations are) and the text metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from wmbench.errors import SuiteError
from wmbench.types import EdgeCase, MetricSpec, Modality, NegativePools, SampleKind, SettingsTable

METRICS = (
    MetricSpec(
        "perplexity", "Perplexity", higher_is_better=False,
        reference="none: the item alone, under the suite's reference language model ([text] lm)",
        description="perplexity of the detected text under the reference LM (lower = more fluent)", digits=1,
        judges_damage=False, intrinsic=True),
    MetricSpec(
        "similarity", "Similarity", higher_is_better=True,
        reference="the clean original text, or for a generation mark its unattacked generation",
        acceptable=0.8, acceptable_source="wmbench convention for 'same meaning' with all-MiniLM-L6-v2 cosine",
        description="semantic similarity (cosine of all-MiniLM-L6-v2 sentence embeddings, 0-1)", digits=3),
)

PERPLEXITY_SCOPES = ("all", "unattacked")
LM_WORDS = '"ngram", "gemma3-270m" or a model folder'


def problem(item: Any) -> str | None:
    return None if isinstance(item, str) else f"returned {type(item).__name__}, not str"


def measure(reference: Any, item: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Perplexity under the suite's LM (``options["lm"]``); similarity to the reference.

    A metric that cannot be measured stays empty and the cell says why in a
    ``*_missing`` note (never an invented value).
    """
    from wmbench.modalities.text.quality import perplexity, similarity

    if options.get("attacked", False) and options.get("perplexity", "all") == "unattacked":
        score = lambda: (None, 'not measured: the suite scores perplexity on unattacked texts only '  # noqa: E731
                               '([text] perplexity = "unattacked")')
    else:
        score = lambda: perplexity(item, options.get("lm", "ngram"))  # noqa: E731
    metrics: dict[str, Any] = {}
    for name, run in (("perplexity", score), ("similarity", lambda: similarity(reference, item))):
        value, reason = run()
        metrics[name] = value
        if reason:
            metrics[f"{name}_missing"] = reason
    return metrics


def parse_settings(table: Mapping[str, Any], base_dir: Path, where: str) -> dict[str, Any]:
    """The ``[text]`` table: ``lm``, ``max_new_tokens``, ``perplexity`` ("all" | "unattacked")."""
    from wmbench.modalities.text.lm import LMError, check_lm_spec

    unknown = sorted(set(table) - {"lm", "max_new_tokens", "perplexity"})
    if unknown:
        raise SuiteError(f"{where}: unknown field {unknown[0]!r}; valid: lm, max_new_tokens, perplexity")
    lm = table.get("lm", "ngram")
    if not isinstance(lm, str):
        raise SuiteError(f"{where}.lm: expected {LM_WORDS}, got {type(lm).__name__} {lm!r}")
    try:
        lm = check_lm_spec(lm, base_dir)
    except LMError as exc:
        raise SuiteError(f"{where}.lm: {exc}") from None
    max_new = table.get("max_new_tokens")
    if max_new is not None:
        if isinstance(max_new, bool) or not isinstance(max_new, int):
            raise SuiteError(f"{where}.max_new_tokens: expected a positive integer, got "
                             f"{type(max_new).__name__} {max_new!r}")
        if max_new < 1:
            raise SuiteError(f"{where}.max_new_tokens: must be at least 1, got {max_new}")
    scope = table.get("perplexity", "all")
    if not isinstance(scope, str):
        raise SuiteError(f'{where}.perplexity: expected "all" or "unattacked", got {type(scope).__name__} {scope!r}')
    if scope not in PERPLEXITY_SCOPES:
        raise SuiteError(f"{where}.perplexity: must be \"all\" or \"unattacked\", got {scope!r}")
    return {"lm": lm, "max_new_tokens": max_new, "perplexity": scope}


def resolve_parameter(name: str, value: Any, base_dir: Path, where: str) -> Any:
    """A method's own ``lm`` is checked and resolved exactly as ``[text] lm`` is."""
    if name != "lm":
        return value
    from wmbench.modalities.text.lm import LMError, check_lm_spec

    try:
        return check_lm_spec(value, base_dir)
    except LMError as exc:
        raise SuiteError(f"{where}: {exc}") from None


def describe_settings(settings: Mapping[str, Any]) -> dict[str, str]:
    lm = settings.get("lm") or "ngram"
    return {"Language model": "embedded word trigram LM (Kneser-Ney), trained offline" if lm == "ngram" else str(lm)}


def _discover_texts(sources: tuple[str, ...], base_dir: Path) -> list[Any]:
    from wmbench.modalities.text.io import discover_texts

    return discover_texts(sources, base_dir)


def _discover_prompts(sources: tuple[str, ...], base_dir: Path) -> list[Any]:
    from wmbench.modalities.text.io import discover_prompts

    return discover_prompts(sources, base_dir)


def _load(source: str) -> Any:
    from wmbench.modalities.text.io import load_text

    return load_text(source)


def _save(item: Any, path: Path) -> None:
    from wmbench.modalities.text.io import save_text

    save_text(item, path)


def _viewer(example: Any) -> Any:
    from wmbench.modalities.text.view import build_textview

    return build_textview(example)


def modality() -> Modality:
    return Modality(
        name="text", title="Text", item_word="text", contract="a str", cache_suffix=".txt",
        load=_load, save=_save, problem=problem, metrics=METRICS, measure=measure,
        sample_kinds=(SampleKind("texts", "item", "builtin:texts", _discover_texts),
                      SampleKind("prompts", "prompt", "builtin:prompts", _discover_prompts)),
        damage_metric="similarity",
        pools=NegativePools(unpaired="human texts", unpaired_short="human"),
        edge_cases=lambda: [EdgeCase("the empty text", "")],
        settings=SettingsTable("text", parse_settings, inherited=("lm", "max_new_tokens"),
                               resolve=resolve_parameter, describe=describe_settings),
        viewer=_viewer,
        description="UTF-8 texts: human paragraphs to mark, prompts that generation marks continue",
    )
