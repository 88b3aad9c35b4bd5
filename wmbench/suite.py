"""Suite files: TOML in, validated dataclasses out.

Every error names the file and the field (``suite.toml: attacks[2].strengths: ...``)
so a user can fix it without reading a traceback. Validation happens entirely
before any work starts: a typo must not cost a ten-minute run.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from wmbench import registry
from wmbench.errors import SuiteError
from wmbench.types import SampleKind

BUILTIN_SUITE = "default"
MAX_NEGATIVE_KEYS = 10_000


@dataclass(frozen=True)
class MethodConfig:
    name: str
    key: str
    max_samples: int | None = None  # rivaGan costs ~2 s per call: let a suite cap its samples
    attacks: tuple[str, ...] | None = None  # None: every attack of the suite; else these labels
    params: tuple[tuple[str, Any], ...] = ()  # the method's own settings (gamma, delta, ...)
    row_label: str | None = None  # how results name it when one method appears twice
    # every unmarked cell is also scored under this many other keys, so that a low
    # false-positive rate is measurable (cheap where the method decodes once: MultiKeyScoring)
    negative_keys: int = 0

    @property
    def label(self) -> str:
        """The name in results and reports: the suite's ``label``, else the method name."""
        return self.row_label or self.name


@dataclass(frozen=True)
class ChainStep:
    attack: str
    strength: Any | None  # None: this step takes the swept strength
    params: tuple[tuple[str, Any], ...] = ()  # the attack's declared parameters the suite set (sorted)


@dataclass(frozen=True)
class AttackConfig:
    """One row of the sweep: a registered attack, or a chain of them, and its strengths.

    ``label`` names the row (results, reports, ``methods.attacks``): the attack's name,
    a single attack's ``label = ...``, or the chain's name. Parameters live on the steps.
    """

    label: str
    steps: tuple[ChainStep, ...]
    strengths: tuple[Any, ...]
    modality: str

    @property
    def is_chain(self) -> bool:
        return len(self.steps) > 1

    @property
    def params(self) -> tuple[tuple[str, Any], ...]:
        """The parameters a single attack was given (a chain's are per step), as sorted pairs."""
        return () if self.is_chain else self.steps[0].params


@dataclass(frozen=True)
class Suite:
    name: str
    seed: int
    alpha: float
    sources: dict[str, tuple[str, ...]]  # [samples] field ("images", "prompts", ...) -> its entries
    methods: tuple[MethodConfig, ...]
    attacks: tuple[AttackConfig, ...]
    plugins: tuple[Path, ...]
    text: str  # the suite file as written, stored with the run for reproducibility
    path: str  # where it came from ("builtin:default" for the built-in suite)
    base_dir: Path = field(default=Path("."))
    # modality name -> its parsed settings table ([text]: lm, max_new_tokens, perplexity)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def settings_of(self, modality: str) -> dict[str, Any]:
        return self.settings.get(modality, {})


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise SuiteError(f"{where}: expected {what}, got {value!r}")
    if not isinstance(value, kind):
        raise SuiteError(f"{where}: expected {what}, got {type(value).__name__} {value!r}")
    return value


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SuiteError(f"{where}: unknown field {unknown[0]!r}; valid: {', '.join(sorted(allowed))}")


def load_suite(path: str | Path | None, extra_plugins: tuple[Path, ...] = ()) -> Suite:
    """Read and validate a suite; ``None`` means the built-in default suite."""
    if path is None:
        text = resources.files("wmbench").joinpath("suites", f"{BUILTIN_SUITE}.toml").read_text("utf-8")
        return parse_suite(text, f"builtin:{BUILTIN_SUITE}", Path.cwd(), extra_plugins)
    p = Path(path)
    if not p.is_file():
        builtin = resources.files("wmbench").joinpath("suites", f"{path}.toml")
        if str(path).isidentifier() or str(path).replace("-", "_").isidentifier():
            if builtin.is_file():  # a built-in suite by name: `wmbench run real-lm`
                return parse_suite(builtin.read_text("utf-8"), f"builtin:{path}", Path.cwd(), extra_plugins)
        raise SuiteError(f"{p}: suite file not found (built-in suites: {', '.join(builtin_suites())})")
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{p}: cannot read suite file: {exc}") from None
    return parse_suite(text, str(p), p.resolve().parent, extra_plugins)


def builtin_suites() -> list[str]:
    """Names of the suites that ship with wmbench (``wmbench run NAME``)."""
    folder = resources.files("wmbench").joinpath("suites")
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".toml"))


def parse_suite(text: str, label: str, base_dir: Path, extra_plugins: tuple[Path, ...] = ()) -> Suite:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{label}: malformed TOML: {exc}") from None

    def at(field_name: str) -> str:
        return f"{label}: {field_name}"

    head = _expect(data.get("suite", {}), dict, at("[suite]"), "a table")
    _check_keys(head, {"name", "seed", "alpha"}, at("[suite]"))
    name = _expect(head.get("name", Path(label).stem), str, at("suite.name"), "a string")
    seed = _expect(head.get("seed", 0), int, at("suite.seed"), "an integer")
    alpha = _expect(head.get("alpha", 0.01), (int, float), at("suite.alpha"), "a number")
    if not 0 < alpha < 1:
        raise SuiteError(f"{at('suite.alpha')}: must lie strictly between 0 and 1, got {alpha}")

    plugin_paths: list[Path] = list(extra_plugins)
    for i, entry in enumerate(_expect(data.get("plugins", []), list, at("plugins"), "a list of folders")):
        _expect(entry, str, at(f"plugins[{i}]"), "a folder path")
        folder = (base_dir / entry).resolve()
        if not folder.is_dir():
            raise SuiteError(f"{at(f'plugins[{i}]')}: plugin folder not found: {folder}")
        plugin_paths.append(folder)
    for folder in plugin_paths:
        try:
            registry.load_plugin_folder(folder)
        except FileNotFoundError as exc:
            raise SuiteError(f"{label}: {exc}") from None

    tables = {m.settings.name: m for m in registry.modalities().values() if m.settings is not None}
    _check_keys(data, {"suite", "samples", "methods", "attacks", "plugins", *tables}, at("top level"))
    kinds = {kind.field: (m.name, kind) for m in registry.modalities().values() for kind in m.sample_kinds}
    samples = _expect(data.get("samples", {}), dict, at("[samples]"), "a table")
    _check_keys(samples, set(kinds), at("[samples]"))
    sources = {name: _parse_sources(samples, kind, base_dir, at) for name, (_, kind) in kinds.items()}

    settings = {m.name: m.settings.parse(_expect(data.get(name, {}), dict, at(f"[{name}]"), "a table"), base_dir,
                                         at(name))
                for name, m in tables.items()}
    methods = tuple(_parse_method(m, at(f"methods[{i}]"), settings, base_dir) for i, m in
                    enumerate(_expect(data.get("methods", []), list, at("methods"), "an array of tables")))
    if not methods:
        raise SuiteError(f"{at('methods')}: the suite names no method; add a [[methods]] table")
    seen_methods: set[tuple[str, str, tuple]] = set()
    labels_seen: dict[str, tuple] = {}
    for i, m in enumerate(methods):
        if (m.name, m.key, m.params) in seen_methods:
            raise SuiteError(f"{at(f'methods[{i}]')}: method {m.name!r} with key {m.key!r} appears twice")
        seen_methods.add((m.name, m.key, m.params))
        if labels_seen.setdefault(m.label, m.params) != m.params:
            raise SuiteError(f"{at(f'methods[{i}]')}: {m.label!r} already names a method with other settings; "
                             f"give this one a label = \"...\" of its own")
    attacks = tuple(_parse_attack(a, at(f"attacks[{i}]")) for i, a in
                    enumerate(_expect(data.get("attacks", []), list, at("attacks"), "an array of tables")))
    labels = [a.label for a in attacks]
    for lab in labels:
        if labels.count(lab) > 1:
            raise SuiteError(f"{at('attacks')}: attack {lab!r} appears twice; give one of them another name "
                             f"(label = \"...\" for a single attack)")
        if lab == "none":
            raise SuiteError(f"{at('attacks')}: 'none' is reserved: every suite runs it automatically")
    for i, m in enumerate(methods):
        for j, lab in enumerate(m.attacks or ()):
            if lab not in labels:
                raise SuiteError(f"{at(f'methods[{i}].attacks[{j}]')}: {lab!r} is not an attack of this suite; "
                                 f"valid: {', '.join(labels)}")
    modalities = {registry.get_method(m.name).modality for m in methods}
    for field_name, (modality, _) in kinds.items():
        if sources[field_name] and modality not in modalities:
            raise SuiteError(f"{at('methods')}: the suite has {field_name} samples but no {modality} method")

    return Suite(
        name=name, seed=seed, alpha=float(alpha), sources={k: v for k, v in sources.items() if v},
        methods=methods, attacks=attacks, plugins=tuple(plugin_paths), text=text, path=label, base_dir=base_dir,
        settings=settings,
    )


def _parse_sources(samples: dict[str, Any], kind: SampleKind, base_dir: Path, at: Any) -> tuple[str, ...]:
    entries = _expect(samples.get(kind.field, []), list, at(f"samples.{kind.field}"), "a list")
    for i, source in enumerate(entries):
        where = at(f"samples.{kind.field}[{i}]")
        _expect(source, str, where, "a string")
        if source.startswith("builtin:"):
            if source != kind.builtin:
                raise SuiteError(f"{where}: unknown built-in {source!r}; valid: {kind.builtin or 'none'}")
        elif not (base_dir / source).exists():
            raise SuiteError(f"{where}: folder or file not found: {base_dir / source}")
    return tuple(entries)


def _parse_method(table: Any, where: str, settings: dict[str, dict[str, Any]],
                  base_dir: Path = Path(".")) -> MethodConfig:
    _expect(table, dict, where, "a table")
    name = _expect(table.get("name"), str, f"{where}.name", "a method name")
    try:
        cls = registry.get_method(name)
    except registry.RegistryError as exc:
        raise SuiteError(f"{where}.name: {exc}") from None
    _check_keys(table, {"name", "label", "key", "max_samples", "attacks", "negative_keys", *cls.parameters}, where)
    params = []
    modality = registry.get_modality(cls.modality)
    own = settings.get(cls.modality, {})
    inherited = {k: own.get(k) for k in (modality.settings.inherited if modality.settings else ())}
    for pname, default in sorted(cls.parameters.items()):
        if pname in table:
            kind = (int, float) if isinstance(default, float) else type(default)
            value = _expect(table[pname], kind, f"{where}.{pname}", f"a {type(default).__name__}")
            if pname in inherited and modality.settings is not None and modality.settings.resolve is not None:
                value = modality.settings.resolve(pname, value, base_dir, f"{where}.{pname}")
            params.append((pname, value))
        elif inherited.get(pname) is not None and inherited[pname] != default:
            params.append((pname, inherited[pname]))
    key = _expect(table.get("key", "wmbench"), str, f"{where}.key", "a string")
    max_samples = table.get("max_samples")
    if max_samples is not None:
        _expect(max_samples, int, f"{where}.max_samples", "a positive integer")
        if max_samples < 1:
            raise SuiteError(f"{where}.max_samples: must be at least 1, got {max_samples}")
    negative_keys = _expect(table.get("negative_keys", 0), int, f"{where}.negative_keys", "an integer from 0 to 10000")
    if not 0 <= negative_keys <= MAX_NEGATIVE_KEYS:
        raise SuiteError(f"{where}.negative_keys: must lie between 0 and {MAX_NEGATIVE_KEYS}, got {negative_keys}")
    only = table.get("attacks")
    if only is not None:
        _expect(only, list, f"{where}.attacks", "a list of attack names from this suite")
        for j, label in enumerate(only):
            _expect(label, str, f"{where}.attacks[{j}]", "an attack name")
        only = tuple(only)
    label = table.get("label")
    if label is not None and not _expect(label, str, f"{where}.label", "a string naming this row").strip():
        raise SuiteError(f"{where}.label: must not be empty")
    return MethodConfig(name=name, key=key, max_samples=max_samples, attacks=only, params=tuple(params),
                        row_label=label, negative_keys=negative_keys)


def _parse_attack(table: Any, where: str) -> AttackConfig:
    _expect(table, dict, where, "a table")
    if "chain" in table:
        _check_keys(table, {"name", "strengths", "chain"}, where)
    label = _expect(table.get("name"), str, f"{where}.name", "an attack name")

    if "chain" in table:
        raw_steps = _expect(table["chain"], list, f"{where}.chain", "a list of {attack=..., strength=...} tables")
        if len(raw_steps) < 2:
            raise SuiteError(f"{where}.chain: a chain needs at least two steps")
        steps = []
        specs = []
        for j, step in enumerate(raw_steps):
            at_step = f"{where}.chain[{j}]"
            _expect(step, dict, at_step, "a table {attack = NAME, strength = VALUE}")
            step_name = _expect(step.get("attack"), str, f"{at_step}.attack", "an attack name")
            spec = _get_attack(step_name, f"{at_step}.attack")
            _check_keys(step, {"attack", "strength", *spec.parameters}, at_step)
            specs.append(spec)
            steps.append(ChainStep(attack=step_name, strength=step.get("strength"),
                                   params=_attack_params(step, spec.parameters, at_step)))
        swept = [s for s in steps if s.strength is None]
        if len(swept) != 1:
            raise SuiteError(f"{where}.chain: exactly one step must leave out 'strength' (it takes the sweep)")
        for j, spec in enumerate(specs[1:], start=1):
            if spec.filler is not None:
                raise SuiteError(f"{where}.chain[{j}].attack: {spec.name!r} acts while the text is generated, "
                                 "so it can only be the first step of a chain")
    else:
        spec = _get_attack(label, f"{where}.name")
        _check_keys(table, {"name", "label", "strengths", *spec.parameters}, where)
        if "label" in table:
            label = _expect(table["label"], str, f"{where}.label", "a string naming this row")
            if not label:
                raise SuiteError(f"{where}.label: must not be empty")
        specs = [spec]
        steps = [ChainStep(attack=spec.name, strength=None, params=_attack_params(table, spec.parameters, where))]
        swept = steps

    modalities = {s.modality for s in specs}
    if len(modalities) > 1:
        raise SuiteError(f"{where}: a chain cannot mix modalities ({', '.join(sorted(modalities))})")

    swept_spec = specs[steps.index(swept[0])]
    strengths = table.get("strengths", list(swept_spec.strengths))
    _expect(strengths, list, f"{where}.strengths", "a list ordered weak -> strong")
    if not strengths:
        raise SuiteError(f"{where}.strengths: give at least one strength")
    return AttackConfig(label=label, steps=tuple(steps), strengths=tuple(strengths), modality=modalities.pop())


def _get_attack(name: str, where: str) -> Any:
    try:
        return registry.get_attack(name)
    except registry.RegistryError as exc:
        raise SuiteError(f"{where}: {exc}") from None


def _attack_params(table: dict[str, Any], declared: dict[str, Any], where: str) -> tuple[tuple[str, Any], ...]:
    """The declared parameters set in ``table``, type-checked against their defaults, as sorted pairs.

    A default of None takes any scalar (string, number, boolean); otherwise the value
    must have the default's type (an integer is accepted for a float); a list default
    takes a list of scalars, stored as a tuple so the config stays hashable.
    """
    out = []
    for pname, default in sorted(declared.items()):
        if pname not in table:
            continue
        value, at_param = table[pname], f"{where}.{pname}"
        if default is None:
            value = _expect(value, (str, int, float, bool), at_param, "a string, number or boolean")
        elif isinstance(default, bool):
            value = _expect(value, bool, at_param, "a boolean (true or false)")
        elif isinstance(default, float):
            value = float(_expect(value, (int, float), at_param, "a number"))
        elif isinstance(default, int):
            value = _expect(value, int, at_param, "an integer")
        elif isinstance(default, str):
            value = _expect(value, str, at_param, "a string")
        else:  # a list (or tuple) default
            _expect(value, list, at_param, "a list")
            for k, v in enumerate(value):
                _expect(v, (str, int, float, bool), f"{at_param}[{k}]", "a string, number or boolean")
            value = tuple(value)
        out.append((pname, value))
    return tuple(out)
