"""Tests for the built-in image attacks in ``attacks/`` (package ``wmbench_attacks``).

The attacks are reached through the registry, i.e. through the ``wmbench.attacks``
entry points of the editable install, exactly as the runner reaches them.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import skimage
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from wmbench import registry
from wmbench.api import AttackSpec

SIZE_CHANGING = {"crop_center", "crop_random", "resize"}
SIZE_KEEPING = {
    "brightness",
    "contrast",
    "crop_center_resize",
    "crop_random_resize",
    "denoise",
    "flip",
    "gamma",
    "gaussian_blur",
    "gaussian_noise",
    "jpeg",
    "median_filter",
    "occlusion",
    "overlay",
    "rotate",
    "webp",
}
EXPECTED = SIZE_CHANGING | SIZE_KEEPING
RANDOMISED = {"crop_random", "crop_random_resize", "gaussian_noise", "occlusion", "overlay"}
# Mirroring changes no value; its strengths are kinds of flip, not degrees of damage.
NOT_ORDERED_BY_QUALITY = {"flip"}
PSNR_TOLERANCE_DB = 0.5


def image_attacks() -> dict[str, AttackSpec]:
    return {name: spec for name, spec in registry.attacks().items() if spec.modality == "image"}


def spec_for(name: str) -> AttackSpec:
    specs = image_attacks()
    assert name in specs, f"image attack {name!r} is not registered; have {sorted(specs)}"
    return specs[name]


def psnr(reference: np.ndarray, other: np.ndarray) -> float:
    mse = float(np.mean((reference.astype(np.float64) - other.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def read_only(image: np.ndarray) -> np.ndarray:
    """A read-only copy: an attack writing into its input then fails loudly."""
    frozen = image.copy()
    frozen.flags.writeable = False
    return frozen


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    path = os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png")
    with Image.open(path) as im:
        small = im.convert("RGB").resize((256, 256), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8).copy()


# --- registration -----------------------------------------------------------------


def test_all_builtin_image_attacks_are_registered() -> None:
    specs = image_attacks()
    assert EXPECTED <= set(specs), f"missing: {sorted(EXPECTED - set(specs))}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registration_metadata(name: str) -> None:
    spec = spec_for(name)
    assert spec.modality == "image"
    assert 1 <= len(spec.strengths) <= 5
    assert spec.description and "\n" not in spec.description
    assert "wmbench_attacks" in spec.source  # came in through the entry points


# --- contract on a real photo ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_contract_on_photo(name: str, photo: np.ndarray) -> None:
    spec = spec_for(name)
    original = photo.copy()
    for strength in spec.strengths:
        image = read_only(photo)
        out = spec(image, strength, np.random.default_rng(1234))
        again = spec(image, strength, np.random.default_rng(1234))
        assert isinstance(out, np.ndarray)
        assert out.dtype == np.uint8, (strength, out.dtype)
        assert out.ndim == 3 and out.shape[2] == 3, (strength, out.shape)
        assert out.shape[0] >= 1 and out.shape[1] >= 1
        assert not np.shares_memory(out, image), f"{name}({strength}) returned a view of its input"
        np.testing.assert_array_equal(image, original)
        np.testing.assert_array_equal(out, again, err_msg=f"{name}({strength}) is not deterministic")
        if name in SIZE_KEEPING:
            assert out.shape == photo.shape, (strength, out.shape)
        else:
            assert out.shape[0] < photo.shape[0] and out.shape[1] < photo.shape[1], strength
        if out.shape == photo.shape:
            assert not np.array_equal(out, photo), f"{name}({strength}) did nothing"


@pytest.mark.parametrize("name", sorted(SIZE_KEEPING - NOT_ORDERED_BY_QUALITY))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quality_falls_along_strengths(name: str, seed: int, photo: np.ndarray) -> None:
    spec = spec_for(name)
    scores = [psnr(photo, spec(photo, s, np.random.default_rng(seed))) for s in spec.strengths]
    for (weak, weak_db), (strong, strong_db) in zip(
        zip(spec.strengths, scores), zip(spec.strengths[1:], scores[1:])
    ):
        assert strong_db <= weak_db + PSNR_TOLERANCE_DB, (
            f"{name}: {strong} ({strong_db:.2f} dB) is milder than {weak} ({weak_db:.2f} dB)"
        )
    assert scores[-1] < scores[0] - 1.0, f"{name}: strongest barely differs from weakest: {scores}"


@pytest.mark.parametrize("name", sorted(SIZE_CHANGING))
def test_size_shrinks_along_strengths(name: str, photo: np.ndarray) -> None:
    spec = spec_for(name)
    areas = [np.prod(spec(photo, s, np.random.default_rng(0)).shape[:2]) for s in spec.strengths]
    assert all(a > b for a, b in zip(areas, areas[1:])), areas


@pytest.mark.parametrize("name", sorted(RANDOMISED))
def test_randomised_attacks_use_the_rng(name: str, photo: np.ndarray) -> None:
    spec = spec_for(name)
    strength = spec.strengths[0]
    outputs = [spec(photo, strength, np.random.default_rng(seed)).tobytes() for seed in range(5)]
    assert len(set(outputs)) > 1, f"{name} gives the same output for five different seeds"


# --- what each attack does ------------------------------------------------------------


def test_crop_center_keeps_the_central_window(photo: np.ndarray) -> None:
    out = spec_for("crop_center")(photo, 0.5, np.random.default_rng(0))
    np.testing.assert_array_equal(out, photo[64:192, 64:192])
    assert spec_for("crop_center")(photo, 0.9, np.random.default_rng(0)).shape == (230, 230, 3)


def _find_window(haystack: np.ndarray, needle: np.ndarray) -> tuple[int, int] | None:
    h, w = needle.shape[:2]
    for top in range(haystack.shape[0] - h + 1):
        for left in range(haystack.shape[1] - w + 1):
            if np.array_equal(haystack[top : top + h, left : left + w], needle):
                return top, left
    return None


def test_crop_random_is_an_exact_window_at_varying_places(photo: np.ndarray) -> None:
    spec = spec_for("crop_random")
    places = set()
    for seed in range(4):
        out = spec(photo, 0.75, np.random.default_rng(seed))
        assert out.shape == (192, 192, 3)
        place = _find_window(photo, out)
        assert place is not None, "crop is not a window of the original"
        places.add(place)
    assert len(places) > 1


def test_resize_keeps_the_small_size(photo: np.ndarray) -> None:
    spec = spec_for("resize")
    assert spec(photo, 0.5, np.random.default_rng(0)).shape == (128, 128, 3)
    assert spec(photo, 0.3, np.random.default_rng(0)).shape == (77, 77, 3)


def test_crop_resize_restores_the_size_of_non_square_images() -> None:
    image = np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    for name in ("crop_center_resize", "crop_random_resize"):
        assert spec_for(name)(image, 0.6, np.random.default_rng(0)).shape == (40, 70, 3)


def test_flip_mirrors_and_is_its_own_inverse(photo: np.ndarray) -> None:
    spec = spec_for("flip")
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(spec(photo, "horizontal", rng), photo[:, ::-1])
    np.testing.assert_array_equal(spec(photo, "vertical", rng), photo[::-1])
    np.testing.assert_array_equal(spec(spec(photo, "vertical", rng), "vertical", rng), photo)
    with pytest.raises(ValueError):
        spec(photo, "diagonal", rng)


def test_rotate_fills_uncovered_corners_with_black() -> None:
    white = np.full((64, 64, 3), 255, dtype=np.uint8)
    out = spec_for("rotate")(white, 45, np.random.default_rng(0))
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[32, 32].tolist() == [255, 255, 255]


def test_gaussian_noise_std_is_in_8bit_levels() -> None:
    grey = np.full((128, 128, 3), 128, dtype=np.uint8)
    out = spec_for("gaussian_noise")(grey, 10, np.random.default_rng(0))
    measured = float(np.std(out.astype(np.float64) - 128))
    assert 9.5 < measured < 10.5


def test_gaussian_blur_leaves_flat_images_flat() -> None:
    """Mirrored borders: blurring a flat image must not darken its edges."""
    flat = np.full((32, 48, 3), 200, dtype=np.uint8)
    np.testing.assert_array_equal(spec_for("gaussian_blur")(flat, 4, np.random.default_rng(0)), flat)


def test_tone_curves() -> None:
    rng = np.random.default_rng(0)
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    bright = spec_for("brightness")(ramp, 1.5, rng)
    assert bright[0, 100].tolist() == [150] * 3 and bright[0, 255].tolist() == [255] * 3
    gamma = spec_for("gamma")(ramp, 0.5, rng)
    assert gamma[0, 0, 0] == 0 and gamma[0, 255, 0] == 255 and gamma[0, 64, 0] == 128
    two_tone = np.zeros((4, 4, 3), dtype=np.uint8)
    two_tone[:, 2:] = 200  # mean grey level 100
    flat = spec_for("contrast")(two_tone, 0.5, rng)
    assert sorted(np.unique(flat).tolist()) == [50, 150]


def test_median_filter_removes_isolated_pixels_and_rejects_even_kernels() -> None:
    image = np.full((16, 16, 3), 50, dtype=np.uint8)
    image[8, 8] = 255
    spec = spec_for("median_filter")
    assert spec(image, 3, np.random.default_rng(0))[8, 8].tolist() == [50, 50, 50]
    with pytest.raises(ValueError):
        spec(image, 4, np.random.default_rng(0))


@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.5])
def test_occlusion_covers_one_flat_rectangle_of_the_requested_area(fraction: float) -> None:
    image = np.full((100, 160, 3), 7, dtype=np.uint8)
    image[..., 1] = 9  # no colour drawn from the rng can equal every pixel by chance
    out = spec_for("occlusion")(image, fraction, np.random.default_rng(3))
    changed = np.argwhere(np.any(out != image, axis=2))
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0) + 1
    box = out[top:bottom, left:right].reshape(-1, 3)
    assert len(np.unique(box, axis=0)) == 1, "occluded area is not one flat colour"
    assert abs((bottom - top) * (right - left) / image[..., 0].size - fraction) < 0.01


def test_stronger_occlusion_covers_the_weaker_one(photo: np.ndarray) -> None:
    spec = spec_for("occlusion")
    masks = [np.any(spec(photo, s, np.random.default_rng(5)) != photo, axis=2) for s in spec.strengths]
    for weak, strong in zip(masks, masks[1:]):
        assert np.all(strong[weak])


def test_overlay_is_local_and_semi_transparent(photo: np.ndarray) -> None:
    out = spec_for("overlay")(photo, 0.4, np.random.default_rng(0))
    changed = np.argwhere(np.any(out != photo, axis=2))
    extent = changed.max(axis=0) - changed.min(axis=0) + 1
    assert np.all(extent <= round(0.4 * 256)), extent  # confined to the logo square
    inside = out[tuple(changed.T)].astype(np.float64)
    # at opacity 0.4 the photo still contributes: the logo pixels are not one flat colour
    assert np.unique(inside, axis=0).shape[0] > 10


def test_compression_at_quality_90_is_lossy_but_mild(photo: np.ndarray) -> None:
    for name in ("jpeg", "webp"):
        out = spec_for(name)(photo, 90, np.random.default_rng(0))
        assert 30.0 < psnr(photo, out) < float("inf"), name


def test_denoise_removes_added_noise() -> None:
    """On smooth content the denoiser must remove most of a noise-like signal."""
    ramp = np.linspace(40, 210, 96)
    rows, cols = np.meshgrid(ramp, ramp, indexing="ij")
    clean = np.stack([rows, cols, np.full_like(rows, 120)], axis=2).astype(np.uint8)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
    cleaned = spec_for("denoise")(noisy, 10, np.random.default_rng(0))
    assert psnr(clean, cleaned) > psnr(clean, noisy) + 6.0


# --- properties on arbitrary small images -----------------------------------------------

small_images = arrays(
    np.uint8,
    st.tuples(st.integers(8, 64), st.integers(8, 64), st.just(3)),
)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@settings(max_examples=25, deadline=None)
@given(
    image=small_images,
    seed=st.integers(0, 2**32 - 1),
    pick=st.integers(0, 4),
    layout=st.sampled_from(["contiguous", "view", "readonly"]),
)
def test_properties_on_small_random_images(
    name: str, image: np.ndarray, seed: int, pick: int, layout: str
) -> None:
    """Any size from 8 to 64 px, any content, any memory layout: the contract holds."""
    spec = spec_for(name)
    strength = spec.strengths[pick % len(spec.strengths)]
    if layout == "view":  # a non-contiguous view, as a caller's slicing or BGR<->RGB flip gives
        image = image[:, ::-1]
    elif layout == "readonly":
        image = read_only(image)
    original = image.copy()
    out = spec(image, strength, np.random.default_rng(seed))
    again = spec(image, strength, np.random.default_rng(seed))
    np.testing.assert_array_equal(image, original)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[0] >= 1 and out.shape[1] >= 1
    assert not np.shares_memory(out, image)
    np.testing.assert_array_equal(out, again)
    if name in SIZE_KEEPING:
        assert out.shape == image.shape
    else:
        assert out.shape[0] <= image.shape[0] and out.shape[1] <= image.shape[1]
