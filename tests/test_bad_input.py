"""Bad and unusual sample files: a suite runs through them, each bad file's cells say why.

The folder mixes broken files (random bytes, a truncated PNG, text named .jpg, a
too-small image, decompression bombs) with unusual but valid ones (grey, RGBA,
16-bit, palette); the valid ones must run cleanly, the broken ones must fail only
their own cells, with a reason a user can act on.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from wmbench.errors import SampleError
from wmbench.modalities.image.io import MAX_IMAGE_PIXELS, discover_images, load_image
from testkit import expected_cells, invoke, read_cells, suite_text

# file name -> words its cells' error must contain
BAD: dict[str, str] = {
    "corrupt.png": "not a readable image",
    "truncated.png": "corrupt or truncated image",
    "text.jpg": "not a readable image",
    "small.png": "needs at least 256x256",
    "bomb.png": "decompression bomb",
    "bomb_mid.png": "decompression bomb",
}
GOOD = ("gray.png", "rgba.png", "gray16.png", "palette.png")
IGNORED = ("notes.txt",)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG: tiny on disk, huge once decoded (PIL mode "1" is 1 byte a pixel)."""
    row = b"\x00" + bytes((width + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
            + _png_chunk(b"IEND", b""))


def write_samples(folder: Path, astronaut: np.ndarray, astronaut_path: Path) -> dict[str, Any]:
    """Write every test file; return the array wmbench should decode for each valid one."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    (folder / "corrupt.png").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    full = astronaut_path.read_bytes()
    (folder / "truncated.png").write_bytes(full[: len(full) // 2])
    (folder / "text.jpg").write_text("this is not a JPEG, just text with a .jpg name\n" * 20)
    Image.fromarray(np.ascontiguousarray(astronaut[:150, :200])).save(folder / "small.png")
    (folder / "bomb.png").write_bytes(bilevel_png(20_000, 20_000))  # 400 MP: Pillow's hard error
    (folder / "bomb_mid.png").write_bytes(bilevel_png(7_000, 6_000))  # 42 MP: over our limit, under 2x it
    (folder / "notes.txt").write_text("not a sample")

    expected: dict[str, np.ndarray] = {}
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    Image.fromarray(gray).save(folder / "gray.png")
    expected["gray.png"] = np.repeat(gray[:, :, None], 3, axis=2)

    alpha = np.tile(np.linspace(0, 255, 512).astype(np.uint8), (512, 1))
    Image.fromarray(np.dstack([astronaut, alpha]), "RGBA").save(folder / "rgba.png")
    expected["rgba.png"] = np.asarray(astronaut)  # alpha dropped, colour kept

    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "gray16.png")  # 16-bit grey PNG
    expected["gray16.png"] = expected["gray.png"]  # v * 257 / 65535 * 255 == v

    palette = Image.fromarray(astronaut).quantize(colors=64)
    palette.save(folder / "palette.png")
    expected["palette.png"] = np.asarray(palette.convert("RGB"))
    return expected


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray,
               astronaut_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    base = tmp_path_factory.mktemp("bad-input")
    expected = write_samples(base / "imgs", astronaut, astronaut_path)
    return base, expected


def test_files_are_what_they_claim(sample_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    """Guard the fixture itself: each file has the property the tests rely on."""
    folder = sample_dir[0] / "imgs"
    modes = {name: Image.open(folder / name).mode for name in GOOD}
    assert modes == {"gray.png": "L", "rgba.png": "RGBA", "gray16.png": "I;16", "palette.png": "P"}
    assert all(Image.open(folder / name).size == (512, 512) for name in GOOD)
    assert (folder / "bomb.png").stat().st_size < 200_000
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        assert Image.open(folder / "bomb.png").size == (20_000, 20_000)
        assert Image.open(folder / "bomb_mid.png").size[0] * Image.open(folder / "bomb_mid.png").size[1] \
            > MAX_IMAGE_PIXELS
    finally:
        Image.MAX_IMAGE_PIXELS = previous


@pytest.mark.parametrize("name", GOOD)
def test_load_image_converts_valid_modes(sample_dir: tuple[Path, dict[str, np.ndarray]], name: str) -> None:
    base, expected = sample_dir
    image = load_image(str(base / "imgs" / name))
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3) and image.flags.c_contiguous
    np.testing.assert_array_equal(image, expected[name])


@pytest.mark.parametrize("name", sorted(BAD))
def test_load_image_refuses_or_loads_bad_files(sample_dir: tuple[Path, dict[str, np.ndarray]], name: str) -> None:
    path = sample_dir[0] / "imgs" / name
    if name == "small.png":  # readable: the method refuses it, not the loader
        assert load_image(str(path)).shape == (150, 200, 3)
        return
    with pytest.raises(SampleError) as info:
        load_image(str(path))
    message = str(info.value)
    assert message.startswith(f"{name}: ") and BAD[name] in message and "\n" not in message


def test_load_image_leaves_pillow_limit_alone(sample_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(SampleError):
        load_image(str(sample_dir[0] / "imgs" / "bomb.png"))
    assert Image.MAX_IMAGE_PIXELS == before


def test_load_image_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="gone.png: file not found"):
        load_image(str(tmp_path / "gone.png"))


def test_discovery_lists_image_suffixes_only(sample_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    base = sample_dir[0]
    samples = discover_images(("imgs",), base)
    assert sorted(s.id for s in samples) == sorted([*BAD, *GOOD])
    assert all(Path(s.source).is_absolute() for s in samples)


@pytest.fixture(scope="module")
def bad_run(sample_dir: tuple[Path, dict[str, np.ndarray]]) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    base = sample_dir[0]
    (base / "suite.toml").write_text(suite_text(attacks=[("jpeg", (70,))]), encoding="utf-8")
    proc = invoke("run", base / "suite.toml", "--out", base / "run", "--workers", "1", "--no-progress")
    by_sample: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if (base / "run" / "results.sqlite").is_file():
        for cell in read_cells(base / "run").values():
            by_sample[cell["sample"]].append(cell)
    return proc, by_sample


@pytest.mark.slow
def test_run_goes_on_past_bad_files(bad_run: tuple[Any, dict[str, list[dict[str, Any]]]]) -> None:
    (code, out, err), by_sample = bad_run
    assert code == 0, err
    assert "Traceback" not in err and "Traceback" not in out
    n_files = len(BAD) + len(GOOD)
    total = expected_cells(n_files, 1, [1])
    assert sum(len(cells) for cells in by_sample.values()) == total
    assert set(by_sample) == set(BAD) | set(GOOD)
    failed = expected_cells(len(BAD), 1, [1])
    assert re.search(rf"^{total} cells run, 0 already done, {failed} failed", out, re.M), out
    assert "failed: " in out  # the summary shows some reasons


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_fail_their_own_cells_with_a_reason(bad_run: tuple[Any, dict[str, list[dict[str, Any]]]],
                                                      name: str) -> None:
    cells = bad_run[1][name]
    assert len(cells) == 4  # clean marked/unmarked + jpeg marked/unmarked
    for cell in cells:
        assert cell["error"] and BAD[name] in cell["error"], cell["error"]
        assert "Traceback" not in cell["error"]  # no --debug: the reason only
        assert cell["p_value"] is None and cell["detected"] is None


@pytest.mark.slow
@pytest.mark.parametrize("name", GOOD)
def test_unusual_but_valid_files_run_cleanly(bad_run: tuple[Any, dict[str, list[dict[str, Any]]]], name: str) -> None:
    cells = bad_run[1][name]
    assert len(cells) == 4
    for cell in cells:
        assert cell["error"] is None, cell["error"]
        assert 0.0 <= cell["p_value"] <= 1.0
    clean_marked = next(c for c in cells if c["attack"] == "none" and c["marked"])
    assert clean_marked["detected"] == 1 and clean_marked["psnr"] > 30

