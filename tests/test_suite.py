"""Suite files: every mistake is one line naming the file and the field; valid suites parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from wmbench import registry
from wmbench.errors import SuiteError
from wmbench.modalities.image.io import discover_images
from wmbench.suite import AttackConfig, ChainStep, MethodConfig, Suite, load_suite, parse_suite
from testkit import suite_text

LABEL = "my-suite.toml"

HEAD = """
[suite]
name = "t"
[samples]
images = ["imgs"]
[[methods]]
name = "dwtDctSvd"
"""


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "imgs").mkdir()
    return tmp_path


def parse_error(text: str, base_dir: Path) -> str:
    with pytest.raises(SuiteError) as info:
        parse_suite(text, LABEL, base_dir)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"{LABEL}: "), message
    return message


# --- errors -------------------------------------------------------------------------


def test_malformed_toml(base: Path) -> None:
    message = parse_error('[suite]\nname = "x\nseed = 1\n', base)
    assert "malformed TOML" in message and "line" in message


def test_unknown_method_lists_valid_names(base: Path) -> None:
    message = parse_error(HEAD.replace("dwtDctSvd", "dwtDctSVD"), base)
    assert "methods[0].name" in message and "'dwtDctSVD'" in message
    for valid in ("dwtDct", "dwtDctSvd", "rivaGan"):
        assert valid in message.split("valid:")[1]


def test_unknown_attack_lists_valid_names(base: Path) -> None:
    text = HEAD + '[[attacks]]\nname = "jpeg"\n[[attacks]]\nname = "jpg"\nstrengths = [50]\n'
    message = parse_error(text, base)
    assert "attacks[1].name" in message and "unknown attack 'jpg'" in message
    valid = message.split("valid:")[1]
    for name in ("jpeg", "webp", "gaussian_blur", "rotate"):
        assert name in valid


def test_unknown_attack_in_chain_names_the_step(base: Path) -> None:
    text = HEAD + '[[attacks]]\nname = "c"\nchain = [{attack = "jpeg"}, {attack = "blurr", strength = 1}]\n'
    message = parse_error(text, base)
    assert "attacks[0].chain[1].attack" in message and "'blurr'" in message


def test_missing_sample_folder(base: Path) -> None:
    message = parse_error(HEAD.replace('["imgs"]', '["imgs", "no-such-folder"]'), base)
    assert "samples.images[1]" in message and "no-such-folder" in message and "not found" in message


def test_unknown_builtin_samples(base: Path) -> None:
    message = parse_error(HEAD.replace('["imgs"]', '["builtin:photos"]'), base)
    assert "samples.images[0]" in message and "builtin:images" in message


@pytest.mark.parametrize("alpha", ["0", "1", "1.5", "-0.01", "nan"])
def test_alpha_out_of_range(base: Path, alpha: str) -> None:
    message = parse_error(HEAD.replace('name = "t"', f'name = "t"\nalpha = {alpha}'), base)
    assert "suite.alpha" in message and "between 0 and 1" in message


@pytest.mark.parametrize(
    ("text", "where", "field"),
    [
        (HEAD + "colour = 1\n", "methods[0]", "colour"),
        (HEAD.replace('name = "t"', 'name = "t"\nnmae = "x"'), "[suite]", "nmae"),
        ("extra = 1\n" + HEAD, "top level", "extra"),
        (HEAD.replace('images = ["imgs"]', 'images = ["imgs"]\nvideos = []'), "[samples]", "videos"),
        (HEAD + '[[attacks]]\nname = "jpeg"\nstrength = [50]\n', "attacks[0]", "strength"),
        (HEAD + '[[attacks]]\nname = "c"\nchain = [{attack = "jpeg"}, {attack = "flip", level = 1}]\n',
         "attacks[0].chain[1]", "level"),
    ],
)
def test_unknown_field(base: Path, text: str, where: str, field: str) -> None:
    message = parse_error(text, base)
    assert where in message and f"unknown field {field!r}" in message and "valid:" in message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('name = "t"', 'name = "t"\nseed = "7"', "suite.seed"),
        ('name = "t"', 'name = "t"\nseed = 1.5', "suite.seed"),
        ('name = "t"', 'name = "t"\nseed = true', "suite.seed"),
        ('name = "t"', 'name = "t"\nalpha = "0.01"', "suite.alpha"),
        ('name = "t"', 'name = "t"\nalpha = true', "suite.alpha"),
        ('name = "t"', "name = 3", "suite.name"),
        ('images = ["imgs"]', 'images = "imgs"', "samples.images"),
        ('images = ["imgs"]', "images = [1]", "samples.images[0]"),
        ('name = "dwtDctSvd"', 'name = "dwtDctSvd"\nkey = 5', "methods[0].key"),
        ('name = "dwtDctSvd"', 'name = "dwtDctSvd"\nmax_samples = "2"', "methods[0].max_samples"),
        ('name = "dwtDctSvd"', 'name = "dwtDctSvd"\nmax_samples = 0', "methods[0].max_samples"),
        ('name = "dwtDctSvd"', 'name = "dwtDctSvd"\nmax_samples = true', "methods[0].max_samples"),
        ('name = "dwtDctSvd"', "name = 1", "methods[0].name"),
        ('[suite]\nname = "t"', 'suite = "t"', "[suite]"),
        ('name = "dwtDctSvd"', 'name = "dwtDctSvd"\nattacks = "jpeg"', "methods[0].attacks"),
        ('name = "dwtDctSvd"', 'name = "dwtDctSvd"\nattacks = [1]', "methods[0].attacks[0]"),
    ],
)
def test_wrong_types(base: Path, old: str, new: str, field: str) -> None:
    text = HEAD.replace(old, new, 1)
    assert text != HEAD
    message = parse_error(text, base)
    assert f"{LABEL}: {field}:" in message


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('methods = {name = "dwtDctSvd"}\n[samples]\nimages = ["imgs"]\n', "methods"),
        ('plugins = "x"\n[[methods]]\nname = "dwtDctSvd"\n', "plugins"),
        ('attacks = 3\n[[methods]]\nname = "dwtDctSvd"\n', "attacks"),
        ('samples = ["imgs"]\n[[methods]]\nname = "dwtDctSvd"\n', "[samples]"),
    ],
)
def test_wrong_top_level_types(base: Path, text: str, field: str) -> None:
    message = parse_error(text, base)
    assert f"{LABEL}: {field}:" in message


@pytest.mark.parametrize(
    ("attack", "field"),
    [
        ('name = "jpeg"\nstrengths = 50', "attacks[0].strengths"),
        ('name = "jpeg"\nstrengths = []', "attacks[0].strengths"),
        ("strengths = [50]", "attacks[0].name"),
        ('name = "c"\nchain = "jpeg"', "attacks[0].chain"),
        ('name = "c"\nchain = [{attack = "jpeg"}]', "attacks[0].chain"),
        ('name = "c"\nchain = ["jpeg", "flip"]', "attacks[0].chain[0]"),
    ],
)
def test_bad_attack_tables(base: Path, attack: str, field: str) -> None:
    message = parse_error(HEAD + "[[attacks]]\n" + attack + "\n", base)
    assert f"{LABEL}: {field}:" in message


def test_method_attack_subset_must_name_suite_attacks(base: Path) -> None:
    text = HEAD + 'attacks = ["jpeg", "webp"]\n[[attacks]]\nname = "jpeg"\n[[attacks]]\nname = "flip"\n'
    message = parse_error(text, base)
    assert "methods[0].attacks[1]" in message and "'webp'" in message and "valid: jpeg, flip" in message


def test_no_methods(base: Path) -> None:
    message = parse_error('[samples]\nimages = ["imgs"]\n', base)
    assert "methods" in message and "no method" in message


def test_duplicate_attack_names(base: Path) -> None:
    text = HEAD + '[[attacks]]\nname = "jpeg"\nstrengths = [90]\n[[attacks]]\nname = "jpeg"\nstrengths = [30]\n'
    message = parse_error(text, base)
    assert "'jpeg' appears twice" in message


def test_duplicate_method_entries(base: Path) -> None:
    text = HEAD + 'key = "k"\n[[methods]]\nname = "dwtDctSvd"\nkey = "k"\n'
    message = parse_error(text, base)
    assert "methods" in message and "twice" in message


def test_none_is_a_reserved_attack_name(base: Path) -> None:
    text = HEAD + '[[attacks]]\nname = "none"\nchain = [{attack = "jpeg"}, {attack = "flip", strength = "vertical"}]\n'
    assert "reserved" in parse_error(text, base)


@pytest.mark.parametrize(
    "chain",
    [
        '[{attack = "crop_center_resize", strength = 0.9}, {attack = "jpeg", strength = 50}]',  # no swept step
        '[{attack = "crop_center_resize"}, {attack = "jpeg"}]',  # two swept steps
    ],
)
def test_chain_needs_exactly_one_swept_step(base: Path, chain: str) -> None:
    message = parse_error(HEAD + f'[[attacks]]\nname = "c"\nchain = {chain}\n', base)
    assert "attacks[0].chain" in message and "exactly one step" in message


def test_load_suite_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(SuiteError, match="missing.toml: suite file not found"):
        load_suite(missing)
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path)  # a folder is not a suite file
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SuiteError) as info:
        load_suite(binary)
    assert str(info.value).startswith(f"{binary}: cannot read suite file") and "\n" not in str(info.value)
    bad = tmp_path / "bad.toml"
    bad.write_text("[[methods]\n", encoding="utf-8")
    with pytest.raises(SuiteError) as info:
        load_suite(bad)
    assert str(info.value).startswith(f"{bad}: malformed TOML")


# --- valid suites ---------------------------------------------------------------------


def test_valid_suite_parses_into_dataclasses(tmp_path: Path, photos: Path) -> None:
    text = suite_text(
        methods=[("dwtDctSvd", "k1"), ("rivaGan", "k2", 1)],
        attacks=[("jpeg", (90, 50)), ("flip", ("horizontal",))],
        name="tiny", seed=11, alpha=0.05,
    ) + (
        '[[attacks]]\nname = "webp"\n\n'
        '[[attacks]]\nname = "crop_then_jpeg"\n'
        'chain = [{ attack = "crop_center_resize", strength = 0.9 }, { attack = "jpeg" }]\nstrengths = [70, 30]\n'
    )
    path = tmp_path / "tiny.toml"
    path.write_text(text, encoding="utf-8")
    suite = load_suite(path)
    assert isinstance(suite, Suite)
    assert (suite.name, suite.seed, suite.alpha) == ("tiny", 11, 0.05)
    assert suite.sources == {"images": ("imgs",)}  # only the [samples] fields the suite fills
    assert suite.base_dir == tmp_path.resolve()
    assert suite.path == str(path) and suite.text == text
    assert suite.methods == (MethodConfig("dwtDctSvd", "k1"), MethodConfig("rivaGan", "k2", max_samples=1))
    jpeg, flip, webp, chain = suite.attacks
    assert jpeg == AttackConfig("jpeg", (ChainStep("jpeg", None),), (90, 50), "image")
    assert flip.strengths == ("horizontal",) and not flip.is_chain
    assert webp.strengths == registry.get_attack("webp").strengths  # omitted: the attack's own sweep
    assert chain.is_chain and chain.label == "crop_then_jpeg"
    assert chain.steps == (ChainStep("crop_center_resize", 0.9), ChainStep("jpeg", None))
    assert chain.strengths == (70, 30)


def test_defaults(base: Path) -> None:
    suite = parse_suite('[samples]\nimages = ["imgs"]\n[[methods]]\nname = "dwtDct"\n', "some/where/x.toml", base)
    assert (suite.name, suite.seed, suite.alpha) == ("x", 0, 0.01)
    assert suite.methods == (MethodConfig("dwtDct", "wmbench"),)
    assert suite.attacks == ()


def test_chain_without_strengths_sweeps_the_swept_steps_defaults(base: Path) -> None:
    text = HEAD + '[[attacks]]\nname = "c"\nchain = [{attack = "jpeg"}, {attack = "flip", strength = "vertical"}]\n'
    (attack,) = parse_suite(text, LABEL, base).attacks
    assert attack.strengths == registry.get_attack("jpeg").strengths
    assert attack.steps[1] == ChainStep("flip", "vertical")


def test_sample_paths_are_relative_to_the_suite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "project"
    (sub / "imgs").mkdir(parents=True)
    (sub / "s.toml").write_text(HEAD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # not the suite's folder
    suite = load_suite(Path("project/s.toml"))
    assert suite.base_dir == sub.resolve()


def test_builtin_default_suite_loads() -> None:
    suite = load_suite(None)
    assert suite.path == "builtin:default" and suite.name == "default"
    assert [m.label for m in suite.methods] == ["dwtDct", "dwtDctSvd", "rivaGan", "unigram", "kgw", "lexical",
                                                "kgw-raw", "lexical-raw"]
    assert suite.settings["text"]["lm"] == "ngram" and suite.settings["text"]["max_new_tokens"] == 400
    assert suite.settings_of("text") == suite.settings["text"]
    assert suite.methods[2].max_samples is not None  # rivaGan is slow: the default suite caps it
    assert suite.sources["texts"] == ("builtin:texts",) and suite.sources["prompts"] == ("builtin:prompts",)
    labels = [a.label for a in suite.attacks]
    assert len(labels) == len(set(labels)) >= 10
    assert "jpeg" in labels and "crop_then_jpeg" in labels
    assert next(a for a in suite.attacks if a.label == "crop_then_jpeg").is_chain
    for attack in suite.attacks:
        for step in attack.steps:
            registry.get_attack(step.attack)
    samples = discover_images(suite.sources["images"], suite.base_dir)
    assert len(samples) == 8 and all(Path(s.source).is_file() for s in samples)
    assert len({s.id for s in samples}) == 8


TEXT_METHODS = '[samples]\ntexts = ["builtin:texts"]\n'


def test_one_method_twice_needs_a_label_per_setting(base: Path) -> None:
    twice = TEXT_METHODS + '[[methods]]\nname = "lexical"\n[[methods]]\nname = "lexical"\nnormalize = true\n'
    with pytest.raises(SuiteError, match=r"methods\[1\]: 'lexical' already names a method with other settings"):
        parse_suite(twice, "s.toml", base)
    labelled = twice + 'label = "lexical+normalize"\n'
    suite = parse_suite(labelled, "s.toml", base)
    assert [m.label for m in suite.methods] == ["lexical", "lexical+normalize"]
    assert [m.name for m in suite.methods] == ["lexical", "lexical"]
    with pytest.raises(SuiteError, match=r"methods\[1\].label: must not be empty"):
        parse_suite(twice + 'label = " "\n', "s.toml", base)


def test_a_generation_time_attack_can_only_start_a_chain(base: Path) -> None:
    text = (TEXT_METHODS.replace("texts", "prompts").replace("builtin:prompts", "builtin:prompts")
            + '[[methods]]\nname = "kgw"\n[[attacks]]\nname = "typo_then_emoji"\n'
            'chain = [{ attack = "typo", strength = 0.1 }, { attack = "emoji" }]\n')
    with pytest.raises(SuiteError, match=r"chain\[1\].attack: 'emoji' acts while the text is generated"):
        parse_suite(text, "s.toml", base)
    ok = text.replace('{ attack = "typo", strength = 0.1 }, { attack = "emoji" }',
                      '{ attack = "emoji" }, { attack = "typo", strength = 0.1 }')
    assert parse_suite(ok, "s.toml", base).attacks[0].is_chain
