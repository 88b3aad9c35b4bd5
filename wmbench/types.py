"""The leaf types every part of wmbench shares: no import back up into the package.

``api`` (what plugins import) and ``registry`` (what collects plugins) both import
from here and never from each other's private parts, so the plugin API, the
registry and the data path can be read (and imported) one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

ModalityName = str  # "image", "text", or whatever a modality plugin registers

AttackFn = Callable[..., Any]  # fn(item, strength, rng, **params) -> item

ROLES = ("item", "prompt")  # a sample to mark, or the start of a text a generation mark continues


@dataclass(frozen=True)
class Sample:
    """One input item, named by where it comes from; the runner loads it in a worker.

    ``role`` is "item" for something to mark (a photo, a human text) and "prompt" for
    the start of a text that generation marks continue.
    """

    id: str
    modality: ModalityName
    source: str  # file path (a prompt line: "path#L3"), shown in reports
    role: str = "item"


@dataclass(frozen=True)
class Detection:
    """What a detector says about one item for one key.

    ``p_value`` is the probability of a score at least this extreme on an item that
    does *not* carry the mark for this key; it is the one scale shared by every
    modality. ``score`` is method-specific (matching bits, z-score, ...).
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


class ExampleMissing(Exception):
    """A report view cannot show an item (it was deleted, or moved with the samples); the
    message becomes the view's note instead."""


class DetectorRefused(ValueError):
    """Raised by ``Watermarker.detect`` when the item is outside what the detector can
    read at all (e.g. an attack shrank an image below the library's minimum size).

    The bench records such a cell as *not detected* (p = 1) with the reason, because
    that is what a deployed detector would report; any other exception is a failed
    cell, counted apart and never as a miss.
    """


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


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: its name, modality, ordered strengths and the callable.

    ``source`` tells users where it came from (built-in module, plugin file, or
    installed distribution) and is filled in by the registry. ``parameters`` are the
    declared settings and their defaults; calling the spec passes every one of them
    to the attack (the given value, else the default), so attacks without
    parameters are still called as ``apply(item, strength, rng)``. ``tags`` describe
    the attack to reports and verdicts (``family``, ``geometric``, ``prefix``, ...)
    so that no report ever needs to know an attack by its name.
    """

    name: str
    modality: ModalityName
    strengths: tuple[Any, ...]
    apply: AttackFn
    description: str = ""
    source: str = ""
    parameters: dict[str, Any] = field(default_factory=dict, hash=False)
    # A generation-time attack: the generation mark writes its text with this filler
    # after words (at the swept strength as rate), then ``apply`` post-processes it.
    filler: str | None = None
    tags: dict[str, Any] = field(default_factory=dict, hash=False)
    # (item, strength) -> the fraction of the item's content the attack keeps (a crop keeps
    # strength², a rotation what stays on the canvas); None: it keeps everything
    kept: Callable[[Any, Any], float] | None = field(default=None, hash=False, compare=False)
    unit: str = ""  # what a strength counts ("JPEG quality", "degrees"): the charts' axis

    @property
    def generation_time(self) -> bool:
        return self.filler is not None

    def __call__(self, item: Any, strength: Any, rng: np.random.Generator, **params: Any) -> Any:
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            raise TypeError(f"attack {self.name!r} has no parameter {unknown[0]!r}; "
                            f"declared: {', '.join(sorted(self.parameters)) or 'none'}")
        return self.apply(item, strength, rng, **{**self.parameters, **params})


# -- modalities ----------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricSpec:
    """One quality metric a modality measures on every cell, declared once.

    Reports, the verdict, exports and ``check-plugin`` iterate over these instead of
    knowing metric names. ``reference`` says what the item is compared with (the
    clean original, the unmarked twin, ...); ``acceptable`` is the level at which a
    person would still accept the item, with ``acceptable_source`` saying who says
    so. ``judges_damage``: the metric falls as an attack gets stronger (check-plugin
    uses it to test a sweep's order; perplexity of typo-ridden text does not).
    """

    name: str  # the key in Record.metrics and the export column
    label: str  # column heading
    unit: str = ""
    higher_is_better: bool = True
    reference: str = "the clean original"
    acceptable: float | None = None
    acceptable_source: str = ""
    description: str = ""
    digits: int = 2
    judges_damage: bool = True
    show_unmarked: bool = True  # also report it on the unmarked (negative) items
    intrinsic: bool = False  # measured on the item alone (perplexity), not against a reference

    def acceptable_at(self, value: float) -> bool | None:
        """Is ``value`` within the acceptable level? None when the metric declares none."""
        if self.acceptable is None:
            return None
        return value >= self.acceptable if self.higher_is_better else value <= self.acceptable


@dataclass(frozen=True)
class SampleKind:
    """A field of the suite's ``[samples]`` table and how to turn its entries into samples.

    A sample's ``source`` names a file (or ``file#L3``, one line of it): the runner keys
    its item cache on the file's modification time and the report reads originals back
    from it, so a built-in set generated in code is written to files once (a cache folder).
    """

    field: str  # "images", "texts", "prompts"
    role: str  # "item" or "prompt"
    builtin: str  # the built-in source this kind accepts ("builtin:images"); "" for none
    discover: Callable[[tuple[str, ...], Path], list[Sample]]  # sources, base folder -> samples


@dataclass(frozen=True)
class EdgeCase:
    """A degenerate input ``check-plugin`` feeds to every attack of a modality."""

    label: str  # "the empty text", "a 1x1 image"
    item: Any
    allowed: tuple[type[BaseException], ...] = ()  # exceptions that are a fair answer (with a message)


@dataclass(frozen=True)
class NegativePools:
    """Words for the two pools of negatives of a generation mark."""

    paired: str = "unmarked generations"  # the unmarked twins of the marked items
    paired_short: str = "unmarked gen."
    unpaired: str = "other samples"  # samples only ever checked unmarked
    unpaired_short: str = "other"
    sources: str = "prompts"  # what the marked items were made from


@dataclass(frozen=True)
class SettingsTable:
    """A suite table a modality owns (``[text]``): parsed once, passed to measure().

    ``inherited``: method parameters that take the table's value when a method's own
    table leaves them out (``lm``, ``max_new_tokens``).
    """

    name: str
    parse: Callable[[Mapping[str, Any], Path, str], dict[str, Any]]  # table, base dir, "file: [name]"
    inherited: tuple[str, ...] = ()
    # (parameter, value, base dir, "file: methods[0].lm") -> the value as the method gets it
    # (a relative model folder made absolute); raises SuiteError naming the field
    resolve: Callable[[str, Any, Path, str], Any] | None = None
    describe: Callable[[Mapping[str, Any]], dict[str, str]] | None = None  # for the report's setup box


@dataclass(frozen=True)
class Modality:
    """Everything the core needs to know about one kind of content.

    A modality package builds one and registers it through the ``wmbench.modalities``
    entry-point group; the runner, store, report and ``check-plugin`` use only these
    fields. See the README's "Adding a modality" for what each must do.
    """

    name: ModalityName
    title: str  # section heading in reports: "Images"
    item_word: str  # "image": used in sentences
    contract: str  # what an attack must return, in words: "a uint8 HxWx3 array"
    cache_suffix: str  # file suffix of items in the run cache
    load: Callable[[str], Any]  # sample source -> item; raises SampleError with one line
    save: Callable[[Any, Path], None]  # atomic write into the run cache
    problem: Callable[[Any], str | None]  # why an attack's output breaks the contract, or None
    metrics: tuple[MetricSpec, ...]
    # (reference, item, options) -> {metric name: value or None, "<name>_missing": reason};
    # options: the modality's settings table plus "attacked" (bool)
    measure: Callable[[Any, Any, Mapping[str, Any]], dict[str, Any]]
    sample_kinds: tuple[SampleKind, ...]
    damage_metric: str | None = None  # the metric on the x axis of "TPR against damage"
    pools: NegativePools = NegativePools()
    edge_cases: Callable[[], Sequence[EdgeCase]] = lambda: ()
    settings: SettingsTable | None = None
    # report example of one method: (MethodExample) -> a view object with ``html()``
    viewer: Callable[[Any], Any] | None = None
    # a private copy of an item for each cell (the worker's item cache hands these out);
    # the default copies arrays and passes immutable items (str, bytes, tuples) as they are
    copy: Callable[[Any], Any] = lambda item: item.copy() if isinstance(item, np.ndarray) else item
    description: str = ""
    source: str = ""  # filled by the registry

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)


class Watermarker:
    """A watermarking method. Subclass, set ``name``/``modality``, implement both methods.

    Instances are created lazily, once per worker process, so ``__init__`` may load
    models. ``embed`` must be deterministic for a (item, key) pair: the runner embeds
    once per (sample, method, key) and reuses the result for every attack.
    """

    name: ClassVar[str]
    modality: ClassVar[ModalityName]
    description: ClassVar[str] = ""
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



# -- optional abilities of a watermarker, declared as protocols ----------------------------

@runtime_checkable
class PairEmbedding(Protocol):
    """A generation mark that writes the marked text and its unmarked twin in one batch."""

    def embed_pair(self, item: Any, key: str) -> tuple[Any, Any]: ...


@runtime_checkable
class FillerPairEmbedding(Protocol):
    """A generation mark that writes many (marked, unmarked) pairs with fillers in one batch."""

    def embed_pairs(self, items: Sequence[Any], key: str, fillers: Sequence[Filler]) -> list[tuple[Any, Any]]: ...


@runtime_checkable
class MultiKeyScoring(Protocol):
    """A detector that scores one item under many keys for little more than one (decode
    once, compare with each key's payload): negatives scored under many keys make a low
    false-positive rate measurable."""

    def detect_keys(self, item: Any, keys: Sequence[str]) -> list[Detection]: ...


@runtime_checkable
class Explainable(Protocol):
    """A mark that can say, per token, what its detector counted (the report's text viewer):
    ``explain_tokens(text, key)`` gives pieces with ``text``, ``form``, ``green`` (None: not
    scored), ``counted`` and ``context``."""

    def explain_tokens(self, item: Any, key: str) -> Any: ...
