"""Bad text samples: one clear line each, recorded on the sample's cells; the run goes on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wmbench.errors import SampleError
from wmbench.modalities.text.io import MAX_TEXT_BYTES, load_text

BAD = {
    "empty.txt": (b"", "empty text"),
    "blank.txt": (b"  \n\t \n", "whitespace only"),
    "binary.txt": (b"abc\x00\x01\x02def", "binary file"),
    "latin1.txt": ("caf\u00e9 cr\u00e8me".encode("latin-1"), "not UTF-8"),
    "huge.txt": (b"word " * (MAX_TEXT_BYTES // 5 + 10), "byte limit"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_load_text_refuses_with_one_line(tmp_path: Path, name: str) -> None:
    data, reason = BAD[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(SampleError) as info:
        load_text(str(tmp_path / name))
    message = str(info.value)
    assert name in message and reason in message and "\n" not in message


def test_prompt_lines_and_bom(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_bytes("\ufefffirst prompt\n\nthird prompt\n".encode("utf-8"))
    assert load_text(str(tmp_path / "p.txt#L1")) == "first prompt"
    assert load_text(str(tmp_path / "p.txt#L3")) == "third prompt"
    with pytest.raises(SampleError, match="line 2 is not a prompt"):
        load_text(str(tmp_path / "p.txt#L2"))


def test_a_suite_with_bad_texts_records_them_and_goes_on(tmp_path: Path) -> None:
    texts = tmp_path / "texts"
    texts.mkdir()
    for name, (data, _) in BAD.items():
        (texts / name).write_bytes(data)
    (texts / "good.txt").write_text("The harbour was quiet in the early morning, and the boats rocked gently. " * 6)
    (tmp_path / "suite.toml").write_text(
        '[samples]\ntexts = ["texts"]\n[[methods]]\nname = "lexical"\nkey = "k"\n'
        '[[attacks]]\nname = "word_delete"\nstrengths = [0.1]\n')
    run = subprocess.run([sys.executable, "-m", "wmbench", "run", "suite.toml", "--out", "out", "--workers", "1",
                          "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in subprocess.run(
        [sys.executable, "-m", "wmbench", "export", "out", "--format", "jsonl"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120).stdout.splitlines()]
    by_sample: dict[str, list[dict]] = {}
    for row in rows:
        by_sample.setdefault(row["sample"], []).append(row)
    assert set(by_sample) == set(BAD) | {"good.txt"}
    for name, (_, reason) in BAD.items():
        assert all(reason in (r["error"] or "") for r in by_sample[name]), by_sample[name]
    assert all(r["error"] is None for r in by_sample["good.txt"])
