"""Corruptions: shapes, seeding, closed forms / Pillow paths (±1 grey level), signatures of corruptions.md §5."""
import numpy as np
import pytest
import torch

from conftest import CIFAR_TEST, FROST_DIR
from tttgui.corruptions import BENCHMARK_CORRUPTIONS, CORRUPTIONS, DETERMINISTIC, corrupt, describe
from tttgui.corruptions import blur, reference
from tttgui.data import open_dataset
from tttgui.errors import UserError

RANDOM = [c for c in CORRUPTIONS if c not in DETERMINISTIC]


@pytest.fixture(scope="module")
def images():
    x, _ = open_dataset(CIFAR_TEST).arrays(range(0, 10000, 250))  # 40 real images, all classes
    return x


def close(a, b, frac=0.95):
    d = np.abs(a.astype(int) - b.astype(int))
    return np.mean(d <= 1) >= frac, np.mean(d == 0)


def test_names():
    assert len(CORRUPTIONS) == 19 and BENCHMARK_CORRUPTIONS == CORRUPTIONS[:15]
    assert CORRUPTIONS[15:] == ("speckle_noise", "gaussian_blur", "spatter", "saturate")


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shapes_dtype_and_seed(images, name):
    x = images[:6]
    for s in (1, 5):
        y = corrupt(x, name, s, seed=3)
        assert y.shape == x.shape and y.dtype == np.uint8
        assert np.array_equal(y, corrupt(x, name, s, seed=3))
        assert not np.array_equal(y, x) or (name, s) == ("elastic_transform", 1)
        if name in RANDOM:
            assert not np.array_equal(y, corrupt(x, name, s, seed=4))
    one = corrupt(x[0], name, 2)
    assert one.shape == (32, 32, 3) and one.dtype == np.uint8
    assert corrupt(torch.from_numpy(x[:2]), name, 2).shape == (2, 32, 32, 3)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_match_reference(images, name):
    """Closed forms (brightness, saturate via an HSV round trip), Pillow (pixelate, jpeg), scipy (zoom, blur)."""
    for s in range(1, 6):
        fast = corrupt(images, name, s)
        ref = np.stack([reference.corrupt_one(im, name, s, None) for im in images])
        ok, exact = close(fast, ref)
        assert ok, (name, s, exact)


def test_closed_forms_by_hand():
    x = np.tile(np.array([[[0, 0, 0], [255, 255, 255], [100, 50, 25], [10, 10, 10]]], np.uint8), (8, 2, 1))
    b = corrupt(x, "brightness", 5)  # c = 0.3: black -> (c,c,c); V+c capped at 1
    assert b[0, 0].tolist() == [76, 76, 76] and b[0, 1].tolist() == [255, 255, 255]
    s = corrupt(x, "saturate", 5)  # a=2.5, b=0.2: grey turns reddish (V, V(1-S'), V(1-S'))
    assert s[0, 3].tolist() == [10, 8, 8]


def test_defocus_kernels_and_zoom_counts():
    k1 = blur.defocus_kernel(0.3, 0.4)
    assert k1.shape == (3, 3) and abs(k1[1, 1] - 0.845) < 1e-3 and abs(k1[0, 1] - 0.0371) < 1e-4
    assert abs(k1[0, 0] - 0.0016) < 1e-4
    k4 = blur.defocus_kernel(1, 0.2)
    assert np.allclose(k4[2, 1:4], 0.2, atol=1e-4) and np.allclose(k4[1:4, 2], 0.2, atol=1e-4)
    assert np.allclose(blur.defocus_kernel(1.5, 0.1)[1:4, 1:4], 1 / 9, atol=1e-5)
    assert [len(blur.zoom_factors(s, False)) for s in range(1, 6)] == [7, 12, 16, 21, 26]


def test_glass_blur_gather_equals_pixel_loop(images):
    """The vectorised copy equals the reference's in-place 'swap' loop with the same draws."""
    rng = np.random.default_rng(0)
    x = images[:3]
    for s in (1, 4):
        sigma, delta, iters = blur.GLASS[0][s - 1]
        draws = blur.glass_draws(rng, len(x), 32, 32, delta, iters)
        ref = np.stack([reference.glass_blur(im, s, None, draws=d) for im, d in zip(x, draws)])
        y = blur.floor_u8(blur.gaussian(blur.to_unit(torch.from_numpy(x).permute(0, 3, 1, 2)), sigma))
        y = blur.glass_shuffle(y, draws, delta)
        fast = blur.floor_u8(blur.gaussian(blur.to_unit(y), sigma)).permute(0, 2, 3, 1).numpy()
        assert close(fast, ref, 0.999)[0]


def test_glass_blur_s1_is_shuffle_only(images):
    """σ = 0.05 has radius 0: every output pixel is a copy of an input pixel from its up/left neighbourhood."""
    x = images[:4]
    y = corrupt(x, "glass_blur", 1)
    assert np.array_equal(y[:, :2], x[:, :2]) and np.array_equal(y[:, :, :2], x[:, :, :2])
    nb = [np.roll(np.roll(x, dy, 1), dx, 2) for dy in (0, 1) for dx in (0, 1)]
    hit = np.zeros(y.shape[:3], bool)
    for a in nb:
        hit |= (y == a).all(-1)
    assert hit[:, 2:, 2:].all()


def test_motion_blur_matches_emulation(images):
    x = images[:4]
    angles = np.array([-40.0, -10.0, 15.0, 44.0])
    fast = blur.motion_apply(torch.from_numpy(x).permute(0, 3, 1, 2), 9, 2.5, angles).permute(0, 2, 3, 1)
    ref = np.stack([reference._motion(im, 9, 2.5, a) for im, a in zip(x, angles)])
    assert close(fast.numpy(), ref, 0.99)[0]
    assert blur.motion_taps(9, 2.5, 0)[3][1:] == (0, 3)  # angle 0 samples to the right


@pytest.mark.parametrize("name", [c for c in RANDOM if c != "frost"])  # frost: 5 textures, see below
def test_random_statistics_match_reference(images, name):
    """Mean signed and absolute change against clean agree with the per-image reference (random draws differ)."""
    rs = np.random.RandomState(0)
    for s in (2, 5):
        fast = corrupt(images, name, s, frost_dir=FROST_DIR).astype(float)
        ref = np.stack([reference.corrupt_one(im, name, s, rs) for im in images]).astype(float)
        x = images.astype(float)
        assert abs(np.abs(fast - x).mean() - np.abs(ref - x).mean()) < 3.0 + 0.12 * np.abs(ref - x).mean()


def test_severity_signatures(images):
    d = {s: np.abs(corrupt(images, "glass_blur", s).astype(int) - images).mean() for s in range(1, 6)}
    assert d[4] > d[3] and d[5] > d[3]  # second pass moves more
    snow = [corrupt(images, "snow", s).mean() for s in range(1, 6)]
    assert snow[0] < snow[1] < snow[4]
    n = [np.abs(corrupt(images, "gaussian_noise", s).astype(int) - images).mean() for s in range(1, 6)]
    assert n == sorted(n)


def test_frost_original_and_generated(images):
    assert describe("frost", 3, FROST_DIR) == f"frost s3 (original textures from {FROST_DIR})"
    assert describe("frost", 3) == "frost s3 (generated texture)"
    orig = corrupt(images, "frost", 3, frost_dir=FROST_DIR)
    gen = corrupt(images, "frost", 3)
    assert not np.array_equal(orig, gen)
    for y in (orig, gen):  # a·x + b·texture: brighter on average, by a similar amount
        assert 20 < y.mean() - images.mean() < 80


def test_large_images_use_imagenet_parameters():
    x = np.random.default_rng(0).integers(0, 256, (1, 96, 96, 3), dtype=np.uint8)
    small = np.abs(corrupt(x[:, :32, :32], "gaussian_noise", 3).astype(int) - x[:, :32, :32]).mean()
    large = np.abs(corrupt(x, "gaussian_noise", 3).astype(int) - x).mean()
    assert large > 1.5 * small  # σ 0.18 instead of 0.08
    for name in ("pixelate", "defocus_blur", "fog", "frost", "zoom_blur"):
        assert corrupt(x, name, 2).shape == x.shape


@pytest.mark.parametrize("bad, match", [
    (dict(name="fogg"), "unknown corruption 'fogg'; expected one of gaussian_noise"),
    (dict(severity=0), "severity 0 is outside 1..5"),
    (dict(severity=6), "severity 6 is outside 1..5"),
    (dict(images=np.zeros((4, 32, 32, 3), np.float32)), "dtype float32; expected uint8"),
    (dict(images=np.zeros((32, 32), np.uint8)), r"shape \(32, 32\); expected H×W×3"),
    (dict(name="frost", frost_dir="/nonexistent"), "frost folder /nonexistent not found"),
])
def test_bad_input_one_line(bad, match):
    kw = dict(images=np.zeros((2, 32, 32, 3), np.uint8), name="fog", severity=1) | bad
    with pytest.raises(UserError, match=match) as err:
        corrupt(kw.pop("images"), kw.pop("name"), kw.pop("severity"), **kw)
    assert "\n" not in str(err.value)


def test_single_image_is_fast(images):
    import time
    for name in CORRUPTIONS:
        corrupt(images[0], name, 5, frost_dir=FROST_DIR)
        t = time.perf_counter()
        corrupt(images[0], name, 5, frost_dir=FROST_DIR)
        assert time.perf_counter() - t < 0.1, name


@pytest.mark.parametrize("name", ["shot_noise", "motion_blur", "snow", "spatter", "elastic_transform"])
def test_chunks_in_parallel_are_reproducible(images, name, monkeypatch):
    """Several chunks (one RNG stream each, run by worker threads) give the bytes of a one-worker run, and a
    chunk's images do not change when more chunks follow."""
    from tttgui.corruptions import registry
    step = registry.chunk_size(32, 32)
    x = np.resize(images, (2 * step + 10, 32, 32, 3))
    y = corrupt(x, name, 3, seed=1)
    monkeypatch.setattr(registry, "WORKERS", 1)
    assert np.array_equal(y, corrupt(x, name, 3, seed=1))
    assert np.array_equal(y[:2 * step], corrupt(x[:2 * step], name, 3, seed=1))
