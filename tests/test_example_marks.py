"""The example method package (examples/wmbench-example-marks): a third-party watermark.

Unit level, the module is imported from its file (as a ``--plugins`` folder would
import it) and checked on scikit-image's photos: detection under the right key and
not under others, p-values close to uniform on unmarked images, determinism, the
quality cost and the output contract on arbitrary sizes.

End to end (slow), the package is pip-installed into a fresh virtual environment,
the way tests/test_example_plugin.py installs the example attacks, and a tiny suite
runs it against JPEG.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import stats
from testkit import fresh_venv, run_python

from wmbench.api import DetectorRefused, Watermarker
from wmbench.modalities.image.quality import psnr

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "wmbench-example-marks"
MODULE = EXAMPLE / "wmbench_example_marks" / "marks.py"
SOURCE = "wmbench-example-marks:wmbench_example_marks.marks"  # distribution:module, as listed
ALPHA = 0.05


def _import_example() -> ModuleType:
    """Import marks.py from its file; its @watermarker registers spreadSpectrum in this process."""
    spec = importlib.util.spec_from_file_location("wmbench_example_marks_under_test", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


marks = _import_example()


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
    image = np.ascontiguousarray(image, dtype=np.uint8)
    image.flags.writeable = False  # embed must never write to its input
    return image


# Four of the bench's built-in photos, read straight from scikit-image: portrait, still
# life, animal fur, and a grey one (camera) in RGB.
PHOTOS = {name: _rgb(getattr(skimage.data, name)()) for name in ("astronaut", "coffee", "chelsea", "camera")}


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8)


def _false_positive_bound(n: int, alpha: float = ALPHA) -> int:
    """The count of p < alpha that n uniform p-values exceed with probability below 0.001."""
    return int(stats.binom.ppf(0.999, n, alpha))


@pytest.fixture(scope="module")
def method() -> Watermarker:
    return marks.SpreadSpectrum()


@pytest.fixture(scope="module")
def marked(method: Watermarker) -> dict[str, np.ndarray]:
    return {name: method.embed(photo, "k1") for name, photo in PHOTOS.items()}


def test_the_class_is_a_registered_image_watermarker() -> None:
    cls = marks.SpreadSpectrum
    assert issubclass(cls, Watermarker) and cls.name == "spreadSpectrum" and cls.modality == "image"
    assert cls.parameters == {"strength": 2.0} and not cls.generates
    assert cls.min_pixels == 128 * 128


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_marked_photo_is_detected_under_its_key(name: str, method: Watermarker,
                                                 marked: dict[str, np.ndarray]) -> None:
    result = method.detect(marked[name], "k1")
    assert result.p_value < 1e-6, result
    assert result.score > 5  # a z-score
    assert result.bits_total == (PHOTOS[name].shape[0] // 8) * (PHOTOS[name].shape[1] // 8)
    assert result.bits_total / 2 < result.bits_matched <= result.bits_total  # chips agreeing in sign


@pytest.mark.parametrize("quality", [90, 70])
def test_mark_survives_jpeg(quality: int, method: Watermarker, marked: dict[str, np.ndarray]) -> None:
    for name, image in marked.items():
        result = method.detect(_jpeg(image, quality), "k1")
        assert result.p_value < 1e-6, (name, result)


def test_wrong_keys_do_not_detect_a_marked_photo(method: Watermarker, marked: dict[str, np.ndarray]) -> None:
    """Another key's pattern is independent of this one: its p-values are those of an unmarked image."""
    p = np.array([method.detect(image, f"other-{i}").p_value for image in marked.values() for i in range(40)])
    assert (p < ALPHA).sum() <= _false_positive_bound(p.size), np.sort(p)[:20]
    right = min(method.detect(image, "k1").score for image in marked.values())
    wrong = max(method.detect(image, f"other-{i}").score for image in marked.values() for i in range(40))
    assert right > wrong + 1


def test_unmarked_p_values_are_close_to_uniform(method: Watermarker) -> None:
    """40 keys x 4 unmarked photos: the false positives at alpha stay within a binomial bound.

    Given the photo, each key's chips are independent fair signs, so the correlation is
    N(0, 1) up to the central limit theorem and the p-values are uniform: at alpha = 0.05
    the count of false positives is Binomial(160, 0.05), mean 8. They are not all
    independent (one photo, many keys), so the bound is loose (0.999 quantile), and a
    Kolmogorov-Smirnov test guards the whole distribution, not just its lower tail.
    """
    p = np.array([method.detect(photo, f"key-{i}").p_value for photo in PHOTOS.values() for i in range(40)])
    assert p.size == 160
    assert (p < ALPHA).sum() <= _false_positive_bound(p.size), np.sort(p)[:20]
    assert (p < 0.01).sum() <= _false_positive_bound(p.size, 0.01), np.sort(p)[:20]
    assert stats.kstest(p, "uniform").pvalue > 0.001
    # ... and after JPEG, which a benchmark applies to the unmarked twin as well.
    p_jpeg = np.array([method.detect(_jpeg(photo, 70), f"key-{i}").p_value
                       for photo in PHOTOS.values() for i in range(40)])
    assert (p_jpeg < ALPHA).sum() <= _false_positive_bound(p_jpeg.size), np.sort(p_jpeg)[:20]


def test_embed_is_deterministic_per_key(method: Watermarker) -> None:
    photo = PHOTOS["astronaut"]
    first = method.embed(photo, "k1")
    assert np.array_equal(first, method.embed(photo, "k1"))
    assert np.array_equal(first, marks.SpreadSpectrum().embed(photo, "k1"))  # a fresh instance too
    assert not np.array_equal(first, method.embed(photo, "k2"))


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_quality_cost_at_the_default_strength(name: str, marked: dict[str, np.ndarray]) -> None:
    value = psnr(PHOTOS[name], marked[name])
    assert 35 < value < 44, value  # 20 log10(255 / 2) = 42.1 dB, less where clipping at 0/255 bites


def test_strength_parameter_trades_quality_for_evidence() -> None:
    photo = PHOTOS["coffee"]
    weak, strong = marks.SpreadSpectrum(strength=1.0), marks.SpreadSpectrum(strength=4.0)
    weak_image, strong_image = weak.embed(photo, "k1"), strong.embed(photo, "k1")
    assert psnr(photo, strong_image) < psnr(photo, weak_image)
    assert strong.detect(strong_image, "k1").score > weak.detect(weak_image, "k1").score
    with pytest.raises(ValueError, match="strength"):
        marks.SpreadSpectrum(strength=0.0)


def test_too_small_images_are_refused(method: Watermarker) -> None:
    small = np.zeros((100, 300, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="at least 128x128"):
        method.embed(small, "k1")
    with pytest.raises(DetectorRefused):  # recorded by the bench as "not detected"
        method.detect(small, "k1")


def test_flat_image_gives_no_evidence(method: Watermarker) -> None:
    result = method.detect(np.full((128, 128, 3), 90, dtype=np.uint8), "k1")
    assert result.p_value == 1.0 and result.score == 0.0


@settings(max_examples=25, deadline=None)
@given(height=st.integers(128, 300), width=st.integers(128, 300), seed=st.integers(0, 2**32 - 1),
       key=st.text(min_size=0, max_size=12))
def test_embed_returns_an_rgb_uint8_image_of_the_same_shape(height: int, width: int, seed: int, key: str) -> None:
    image = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    out = marks.SpreadSpectrum().embed(image, key)
    assert out.dtype == np.uint8 and out.shape == (height, width, 3)
    assert np.array_equal(out[(height // 8) * 8:], image[(height // 8) * 8:])  # partial blocks untouched
    assert 0.0 <= marks.SpreadSpectrum().detect(out, key).p_value <= 1.0


def test_the_example_imports_nothing_from_wmbench_but_the_public_api() -> None:
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {m for m in imported if m and m.split(".")[0] == "wmbench"} == {"wmbench.api"}
    assert {m.split(".")[0] for m in imported if m} <= {"__future__", "hashlib", "math", "typing", "numpy",
                                                        "wmbench"}


# --- end to end: installed with pip into a fresh environment --------------------------

SUITE = '''
[suite]
name = "example-marks"
seed = 5
alpha = 0.01

[samples]
images = ["builtin:images"]

[[methods]]
name = "spreadSpectrum"
key = "k1"
max_samples = 2
strength = 2.5

[[attacks]]
name = "jpeg"
strengths = [70]
'''


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv that sees this environment's packages and has the example installed
    (offline: see testkit.fresh_venv)."""
    return fresh_venv(tmp_path_factory.mktemp("example_marks"), EXAMPLE)


@pytest.mark.slow
def test_installed_method_is_listed_with_its_distribution(venv_python: Path, tmp_path: Path) -> None:
    out = run_python(venv_python, "-m", "wmbench", "list", "methods", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert lines["spreadSpectrum"].endswith(f"[{SOURCE}]"), lines["spreadSpectrum"]
    assert " image " in lines["spreadSpectrum"]
    assert "dwtDctSvd" in lines  # the built-ins are still there


@pytest.mark.slow
def test_suite_runs_the_installed_method(venv_python: Path, tmp_path: Path) -> None:
    (tmp_path / "suite.toml").write_text(SUITE, encoding="utf-8")
    run = run_python(venv_python, "-m", "wmbench", "run", "suite.toml", "--out", "out", "--workers", "1",
               "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    export = run_python(venv_python, "-m", "wmbench", "export", "out", "--format", "jsonl", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    rows = [json.loads(line) for line in export.stdout.splitlines()]
    assert rows and {r["method"] for r in rows} == {"spreadSpectrum"}
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows]
    assert all(isinstance(r["p_value"], float) and 0.0 <= r["p_value"] <= 1.0 for r in rows)
    # The suite's strength = 2.5 reached the method: about 40 dB, not the default's 42.
    clean = [r for r in rows if r["attack"] == "none" and r["marked"]]
    assert len(clean) == 2 and all(39.0 < r["psnr"] < 41.5 for r in clean), [r["psnr"] for r in clean]
    jpeg = [r for r in rows if r["attack"] == "jpeg"]
    # 2 photos x 1 strength, each marked and unmarked.
    assert len(jpeg) == 4 and len({r["sample"] for r in jpeg}) == 2
    assert all(r["p_value"] < 1e-6 and r["detected"] for r in jpeg if r["marked"])
    assert all(r["bits_total"] and r["bits_matched"] is not None for r in jpeg)
