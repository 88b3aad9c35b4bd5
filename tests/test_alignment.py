"""Quality against the aligned original: a geometric attack is measured against the
original put through the same geometry (same draws), and declares the content it keeps."""

from __future__ import annotations

import pytest
from testkit import read_cells, suite_text


@pytest.mark.slow
def test_geometric_attacks_are_measured_against_the_aligned_original(tmp_path, photos, write_suite, cli) -> None:
    suite = write_suite(text=suite_text(methods=(("dwtDct", "k1"),),
                                        attacks=(("flip", ("horizontal",)), ("crop_random", (0.5,)),
                                                 ("rotate", (45,)), ("jpeg", (50,)))))
    code, _, err = cli("run", suite, "--out", tmp_path / "run", "--workers", "1", "--no-progress")
    assert code == 0, err
    cells = {(c["attack"], bool(c["marked"])): c for c in read_cells(tmp_path / "run").values()}
    clean = cells[("none", True)]
    # A mirror flip moves every pixel and changes none: against the flipped original it costs
    # exactly what the mark cost (unaligned, its PSNR would be that of two different pictures).
    assert cells[("flip", True)]["psnr"] == pytest.approx(clean["psnr"], abs=1e-9)
    assert cells[("flip", False)]["psnr"] == float("inf") and cells[("flip", True)]["kept"] == 1.0
    # A random crop is compared with the same window of the original (same draws), smaller image.
    crop = cells[("crop_random", True)]
    assert crop["psnr"] is not None and crop["psnr"] > 30 and crop["kept"] == pytest.approx(0.25, abs=0.01)
    assert cells[("crop_random", False)]["psnr"] == float("inf")
    # Rotating by 45 degrees on the same canvas loses the corners.
    assert 0.6 < cells[("rotate", True)]["kept"] < 0.9
    # A non-geometric attack is measured against the original itself and keeps everything.
    assert cells[("jpeg", True)]["kept"] == 1.0 and cells[("jpeg", True)]["psnr"] < clean["psnr"]
