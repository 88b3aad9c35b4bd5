"""The core knows no modality and no attack by name: that knowledge lives in the modality
packages (wmbench/modalities/*) and in each attack's tags.

A branch such as ``if modality == "image"`` outside a modality package is how the
project used to grow (one edit in fifteen files per new modality); these greps keep it
from coming back. They read the real source tree, so they fail on a real regression.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "wmbench"
MODALITY_PACKAGES = CORE / "modalities"

# `== "image"`, `"text" !=`, `"image" in ...`, `{"image": ...}` lookup tables, `.get("text"`
BRANCH = re.compile(r"""(==|!=)\s*['"](image|text)['"]|['"](image|text)['"]\s*(==|!=|in\s)|[{,]\s*['"](image|text)['"]\s*:"""
                    r"""|\.get\(\s*['"](image|text)['"]""")
BUILTIN_ATTACKS = ("truncate", "jpeg", "synonym", "llm_paraphrase", "typo", "homoglyph", "crop_center",
                   "gaussian_blur", "emoji")


def core_files() -> list[Path]:
    files = [p for p in CORE.rglob("*") if p.suffix in (".py", ".html") and MODALITY_PACKAGES not in p.parents]
    assert len(files) > 20, "the core was not found where the test expects it"
    return files


def _hits(pattern: re.Pattern[str], files: list[Path]) -> list[str]:
    out = []
    for path in files:
        for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0] if path.suffix == ".py" else line
            if pattern.search(code):
                out.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    return out


def test_no_modality_branch_outside_the_modality_packages() -> None:
    assert _hits(BRANCH, core_files()) == []


@pytest.mark.parametrize("snippet", ['if kind == "image":', 'x = {"text": 1}', 'if "text" in shown:',
                                     'm.get("image")', "if modality != 'text':"])
def test_the_branch_pattern_catches_what_it_is_for(snippet: str) -> None:
    assert BRANCH.search(snippet)


def test_the_report_names_no_attack() -> None:
    pattern = re.compile(r"""['"](%s)['"]""" % "|".join(BUILTIN_ATTACKS))
    assert _hits(pattern, [p for p in core_files() if "report" in p.parts or p.name in ("aggregate.py",)]) == []


def test_no_module_is_over_the_size_limit() -> None:
    """Small modules with one job: ~450 lines at most (tests and templates aside)."""
    sources = [p for p in (*CORE.rglob("*.py"), *(ROOT / "attacks").rglob("*.py"))]
    long = {str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text("utf-8").splitlines())) > 460}
    assert long == {}
