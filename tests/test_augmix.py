"""MEMO's AugMix ops equal PIL's, as MEMO's third_party.py calls them (uint8 between ops, fillcolor=128)."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from tttgui.augment import _augmix_op, augmix_views


def images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 4, 4, 3)).repeat(8, 1).repeat(8, 2)        # blocks: edges inside
    return np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)


def ours(name, u8, level, sign=1.0):
    q = torch.from_numpy(u8).permute(0, 3, 1, 2).float()
    n = len(u8)
    out = _augmix_op(name, q, torch.full((n,), level), torch.full((n,), sign))
    return out.permute(0, 2, 3, 1).numpy()


BILINEAR = Image.BILINEAR
def affine(*data):
    return lambda im: im.transform((32, 32), Image.AFFINE, data, resample=BILINEAR, fillcolor=128)


PIL_OPS = {   # (op, level, sign): MEMO's call; levels exact in float32, parameters as MEMO computes them
    ("rotate", 0.75, -1.0): lambda im: im.rotate(-2, resample=BILINEAR, fillcolor=128),         # int(0.75 * 3)
    ("rotate", 0.5, 1.0): lambda im: im.rotate(1, resample=BILINEAR, fillcolor=128),
    ("shear_x", 0.875, 1.0): affine(1, 0.875 * 0.3 / 10, 0, 0, 1, 0),
    ("shear_y", 0.5, -1.0): affine(1, 0, 0, -(0.5 * 0.3 / 10), 1, 0),
    ("translate_x", 0.9375, 1.0): affine(1, 0, 1, 0, 1, 0),                                     # int(1.0)
    ("translate_y", 0.9375, -1.0): affine(1, 0, 0, 0, 1, -1),
    ("autocontrast", 0.5, 1.0): ImageOps.autocontrast,
    ("equalize", 0.5, 1.0): ImageOps.equalize,
    ("solarize", 0.5, 1.0): lambda im: ImageOps.solarize(im, 256 - 12),                        # int(12.8)
    ("posterize", 0.5, 1.0): lambda im: ImageOps.posterize(im, 4),
}


@pytest.mark.parametrize("key", list(PIL_OPS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_each_op_equals_pil_on_uint8(key):
    name, level, sign = key
    u8 = images()
    if name == "autocontrast":
        u8 = (u8 // 2 + 40).astype(np.uint8)     # a narrow range, so the lut stretches
    want = np.stack([np.asarray(PIL_OPS[key](Image.fromarray(a))) for a in u8])
    got = ours(name, u8, level, sign)
    assert np.array_equal(got, want.astype(np.float32)), (name, np.abs(got - want).max())


def test_fill_is_what_pil_makes_of_fillcolor_128_on_rgb():
    u8 = images(1)
    got = ours("translate_x", u8, 0.9375, 1.0)[0]
    assert got[:, -1].tolist() == [[128, 0, 0]] * 32     # packed RGB: red 128, not grey, not black


def test_a_chain_is_rounded_to_uint8_after_every_op():
    u8 = images(2, seed=3)
    want = []
    for a in u8:
        im = Image.fromarray(a).rotate(2, resample=BILINEAR, fillcolor=128)
        im = affine(1, -(0.8125 * 0.3 / 10), 0, 0, 1, 0)(im)
        want.append(np.asarray(ImageOps.autocontrast(im)))
    q = ours("rotate", u8, 0.75, 1.0).astype(np.uint8)
    q = ours("shear_x", q, 0.8125, -1.0).astype(np.uint8)
    assert np.array_equal(ours("autocontrast", q, 0.5), np.stack(want).astype(np.float32))


def test_views_mix_uint8_chains_with_the_image():
    x = torch.from_numpy(images(4)).permute(0, 3, 1, 2).float() / 255
    v = augmix_views(x, torch.Generator().manual_seed(0))
    assert v.shape == x.shape and 0 <= v.min() and v.max() <= 1
    assert torch.equal(v, augmix_views(x, torch.Generator().manual_seed(0)))


def test_views_are_drawn_in_one_transfer_without_syncs(monkeypatch):
    """Issue 22, item 2: every draw made on the generator's device (the CPU) and moved in one copy; on the meta
    device any device-to-host sync (nonzero, item, a data-dependent shape) would raise, so the device side has
    none. The views are those of the per-slot version this replaced (sums pinned from it)."""
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255
    v = augmix_views(x, torch.Generator().manual_seed(0))
    assert float(v.double().sum()) == pytest.approx(48832.87172755739, abs=1e-6)
    weights = torch.arange(32 * 32, dtype=torch.float64).reshape(1, 1, 32, 32)
    assert float((v.double() * weights).sum()) == pytest.approx(24992243.538169272, rel=1e-12)

    assert augmix_views(x.to("meta"), torch.Generator().manual_seed(0)).device.type == "meta"
    moves = []
    real = torch.Tensor.to

    def spy(t, *a, **k):
        if any(isinstance(v, (torch.device, str)) for v in (*a, *k.values())):
            moves.append(t.numel())
        return real(t, *a, **k)
    monkeypatch.setattr(torch.Tensor, "to", spy)
    augmix_views(x, torch.Generator().manual_seed(0))
    assert len(moves) == 1
