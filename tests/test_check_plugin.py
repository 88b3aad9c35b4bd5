"""``wmbench check-plugin NAME``: the attack contract on bundled samples.

Built-in attacks pass; deliberately broken plugins, loaded with ``--plugins`` from a
temporary folder, fail on exactly the check they break, with a reason a plugin
author can act on. Everything runs in-process through ``wmbench.cli.main``.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Callable

import pytest
from testkit import assert_one_line_error

from wmbench import plugin_check, registry

Cli = Callable[..., tuple[int, str, str]]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "wmbench-example-attacks"
EXAMPLE_MODULE = EXAMPLE / "wmbench_example_attacks"  # loaded as a loose plugin folder, not installed

# Each broken attack breaks one rule and keeps the others, so the failing line is the
# one under test. Names are unique to this file: the registry is process-wide.
BROKEN = textwrap.dedent('''
    import numpy as np
    from wmbench.api import SkipCell, attack

    @attack("cp_unseeded_noise", modality="image", strengths=[2, 5, 10])
    def unseeded_noise(image, strength, rng):
        """Gaussian noise from a fresh, unseeded generator: differs on every call."""
        noise = np.random.default_rng().normal(0, strength, image.shape)
        return np.clip(image + noise, 0, 255).astype(np.uint8)

    @attack("cp_in_place", modality="image", strengths=[0.1, 0.3, 0.5])
    def in_place(image, strength, rng):
        """Blacks out the top rows of the caller's array and returns it."""
        image[: max(1, int(strength * image.shape[0]))] = 0
        return image

    @attack("cp_word_list", modality="text", strengths=[0.1, 0.5])
    def word_list(text, strength, rng):
        """Returns the words as a list instead of a str."""
        words = text.split()
        return words[: max(1, int(len(words) * (1 - strength)))]

    @attack("cp_reversed_sweep", modality="image", strengths=[20, 10, 2])
    def reversed_sweep(image, strength, rng):
        """Seeded noise, but the sweep is listed strong -> weak."""
        noise = rng.normal(0, strength, image.shape)
        return np.clip(image + noise, 0, 255).astype(np.uint8)

    @attack("cp_first_word", modality="text", strengths=[1])
    def first_word(text, strength, rng):
        """Upper-cases the first letter; indexes into an empty string on ''."""
        words = text.split(" ")
        words[0] = words[0][0].upper() + words[0][1:]
        return " ".join(words)

    @attack("cp_needs_endpoint", modality="text", strengths=[0.5, 1.0])
    def needs_endpoint(text, strength, rng):
        """Cannot run without a service: skips itself, as llm_paraphrase does."""
        raise SkipCell("no endpoint: set CP_URL")

    @attack("cp_tiny_crash", modality="image", strengths=[3])
    def tiny_crash(image, strength, rng):
        """Crops a 16-pixel border; a tiny image raises IndexError, not ValueError."""
        if image.shape[0] < 32:
            raise IndexError("index 16 is out of bounds")
        return image[16:-16, 16:-16].copy()
''')


@pytest.fixture(scope="module")
def broken_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("broken_plugins")
    (folder / "broken.py").write_text(BROKEN, encoding="utf-8")
    return folder


def _lines(out: str) -> dict[str, str]:
    """Check name -> its line, e.g. "deterministic" -> "FAIL  deterministic  two calls ..."."""
    found = {}
    for line in out.splitlines():
        status, _, rest = line.partition("  ")
        if status in ("PASS", "FAIL", "SKIP"):
            found[rest.strip().split("  ")[0]] = line
    return found


ALL_CHECKS = {"runs", "deterministic", "input untouched", "output type", "empty input", "strength order"}


@pytest.mark.parametrize("name, metric", [("jpeg", "psnr"), ("word_delete", "similarity")])
def test_builtin_attack_passes_every_check(cli: Cli, name: str, metric: str) -> None:
    code, out, err = cli("check-plugin", name)
    assert code == 0, out + err
    lines = _lines(out)
    assert set(lines) == ALL_CHECKS, out
    assert all(line.startswith("PASS") for line in lines.values()), out
    assert out.rstrip().splitlines()[-1] == f"{name}: 6 passed, 0 failed"
    # The quality table: one row per strength, weak -> strong, and the tolerance is stated.
    assert metric in out and "tolerance 5%" in out
    header = next(i for i, line in enumerate(out.splitlines()) if line.split()[:1] == ["strength"])
    rows = out.splitlines()[header + 1: header + 5]
    assert [r.split()[0] for r in rows] == (["90", "70", "50", "30"] if name == "jpeg"
                                            else ["0.05", "0.1", "0.2", "0.3"])


def test_size_changing_attack_skips_only_the_order_check(cli: Cli) -> None:
    code, out, err = cli("check-plugin", "resize", "--samples", "1")
    assert code == 0, out + err
    lines = _lines(out)
    assert lines["strength order"].startswith("SKIP") and "input's size" in lines["strength order"]
    assert out.rstrip().endswith("resize: 5 passed, 0 failed, 1 skipped")


@pytest.mark.parametrize("name", ["vowel_drop", "posterize"])
def test_example_plugin_attacks_pass(cli: Cli, name: str) -> None:
    code, out, err = cli("--plugins", EXAMPLE_MODULE, "check-plugin", name)
    assert code == 0, out + err
    assert out.rstrip().endswith(f"{name}: 6 passed, 0 failed")


@pytest.mark.parametrize("name, check, reason", [
    ("cp_unseeded_noise", "deterministic", "equally seeded rngs gave different outputs"),
    ("cp_in_place", "input untouched", "the input was modified in place"),
    ("cp_word_list", "output type", "returned list, not str"),
    ("cp_reversed_sweep", "strength order", "quality rises with strength: psnr "),
    ("cp_first_word", "empty input", ("raised IndexError: string index out of range on the empty text at "
                                      "strength 1: the empty text must come back as a str")),
    ("cp_tiny_crash", "empty input", ("raised IndexError: index 16 is out of bounds on a 1x1 image at "
                                      "strength 3: only a ValueError with a message may be raised")),
])
def test_broken_plugin_fails_the_check_it_breaks(cli: Cli, broken_plugins: Path, name: str, check: str,
                                                 reason: str) -> None:
    code, out, err = cli("--plugins", broken_plugins, "check-plugin", name, "--samples", "1")
    assert code == 1, out + err
    lines = _lines(out)
    assert lines[check].startswith("FAIL"), out
    assert reason in lines[check], lines[check]
    assert f"({check}" in out.rstrip().splitlines()[-1]  # the summary names the failed checks
    if check != "output type":  # a wrong type also fails the empty-input case: that is right
        assert [c for c, line in lines.items() if line.startswith("FAIL")] == [check], out


def test_raising_attack_fails_runs_and_names_the_exception(cli: Cli, broken_plugins: Path) -> None:
    code, out, _ = cli("--plugins", broken_plugins, "check-plugin", "cp_first_word", "--samples", "1")
    assert code == 1
    assert _lines(out)["runs"].startswith("PASS")  # real texts are fine: only "" breaks it


def test_attack_that_skips_itself_is_skipped_not_failed(cli: Cli, broken_plugins: Path) -> None:
    code, out, _ = cli("--plugins", broken_plugins, "check-plugin", "cp_needs_endpoint", "--samples", "1")
    assert code == 0, out  # SkipCell is the contract's way to say "cannot run here"
    lines = _lines(out)
    assert lines["runs"] == "SKIP  runs             the attack skipped itself: no endpoint: set CP_URL"
    assert all(line.startswith("SKIP") and "no endpoint" in line for line in lines.values()), out
    assert out.rstrip().endswith("cp_needs_endpoint: 0 passed, 0 failed, 6 skipped")


def test_unknown_attack_is_a_one_line_error(cli: Cli) -> None:
    code, out, err = cli("check-plugin", "jpge")
    assert_one_line_error(code, err, "check-plugin", "unknown attack 'jpge'", "jpeg")
    assert out == ""


@pytest.mark.parametrize("option, value", [("--samples", "0"), ("--seed", "-1")])
def test_bad_option_is_a_one_line_error(cli: Cli, option: str, value: str) -> None:
    code, _, err = cli("check-plugin", "jpeg", option, value)
    assert_one_line_error(code, err, option)


def test_order_tolerance_is_five_percent_of_the_weaker_mean() -> None:
    def table(*values: float) -> list[tuple[int, dict[str, float | None]]]:
        return [(i, {"psnr": v}) for i, v in enumerate(values)]

    judged = plugin_check.judged_metrics(registry.get_modality("image"))
    assert judged == {"psnr": True, "ssim": True}  # both fall as an image is damaged
    assert plugin_check.ORDER_TOLERANCE == 0.05
    assert plugin_check.order_violations(table(30.0, 31.4, 20.0), judged) == {}  # +4.7 %: noise
    assert plugin_check.order_violations(table(30.0, 31.6, 20.0), judged) == {"psnr": (0, 30.0, 1, 31.6)}  # +5.3 %
    # not only neighbours
    assert plugin_check.order_violations(table(30.0, 29.0, 32.0), judged) == {"psnr": (0, 30.0, 2, 32.0)}
    assert plugin_check.order_violations(table(math.inf, math.inf, 40.0), judged) == {}  # unchanged twice: a tie
    assert plugin_check.order_violations(table(40.0, math.inf), judged) == {"psnr": (0, 40.0, 1, math.inf)}


def test_perplexity_is_shown_but_does_not_vote() -> None:
    judged = plugin_check.judged_metrics(registry.get_modality("text"))
    assert judged == {"similarity": True}  # perplexity does not judge damage (typo-ridden text is not "worse")
    rising = [(0.1, {"similarity": 0.95, "perplexity": 150.0}), (0.5, {"similarity": 0.80, "perplexity": 90.0})]
    assert plugin_check.check_strength_order(rising, judged).status == plugin_check.PASS
    only_perplexity = [(s, {"perplexity": row["perplexity"]}) for s, row in rising]
    check = plugin_check.check_strength_order(only_perplexity, judged)
    assert check.status == plugin_check.SKIP
    assert check.reason == ("only perplexity measured, which does not judge damage "
                            "(is the model behind the other metrics installed?)")
