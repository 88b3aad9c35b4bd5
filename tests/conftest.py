"""Shared fixtures for the end-to-end and robustness tests of the core.

Everything runs on real data: photos bundled with scikit-image (no download), real
suite files written to a temporary folder, the real CLI in a subprocess where the
process boundary matters (exit codes, stderr, kill -9), in-process otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image
from testkit import copy_photos, invoke, skimage_photo, suite_text


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    return skimage_photo("astronaut.png")


@pytest.fixture(scope="session")
def astronaut(astronaut_path: Path) -> np.ndarray:
    """512 x 512 RGB uint8, read independently of wmbench's loader."""
    with Image.open(astronaut_path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    assert arr.shape == (512, 512, 3)
    arr.flags.writeable = False
    return arr


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[..., Path]:
    """``write_suite(file_name="suite.toml", **suite_text_kwargs)`` -> path of the written suite."""

    def write(file_name: str = "suite.toml", text: str | None = None, **kwargs: Any) -> Path:
        path = tmp_path / file_name
        path.write_text(text if text is not None else suite_text(**kwargs), encoding="utf-8")
        return path

    return write


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A sample folder with one real photo (astronaut, 512 x 512)."""
    return copy_photos(tmp_path / "imgs", ["astronaut.png"])


@pytest.fixture
def cli() -> Callable[..., tuple[int, str, str]]:
    return invoke
