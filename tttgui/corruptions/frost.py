"""Frost: blend a random crop of an ice texture. The original five textures (frost1.png .. frost5.jpg) are
used when a folder with them is given; otherwise the project's own generated textures (same sizes)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from tttgui.corruptions.context import Context, pick
from tttgui.corruptions.ops import floor_u8_255
from tttgui.errors import UserError

FROST = (((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
         ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)))
FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")  # frost6.jpg is never used
SIZES = ((600, 900), (315, 560), (315, 560), (350, 527), (495, 660))  # H×W of the originals


def frost_source(frost_dir) -> str:
    return f"original textures from {frost_dir}" if frost_dir else "generated texture"


@lru_cache(maxsize=4)
def textures(frost_dir: str | None, small: bool) -> tuple[np.ndarray, ...]:
    """The 5 textures as uint8 RGB; for small images resized by 0.2 as cv2.resize(INTER_LINEAR) does."""
    if frost_dir is None:  # generated directly at the size the originals have after resizing
        scale = 0.2 if small else 1.0
        return tuple(generated_texture(int(round(h * scale)), int(round(w * scale)), i)
                     for i, (h, w) in enumerate(SIZES))
    full = tuple(_read(Path(frost_dir), name) for name in FILES)
    if not small:
        return full
    # cv2.resize(fx=fy=0.2): output round(0.2*n); source coordinate (i+0.5)*5-0.5 = 5i+2 is a whole pixel
    return tuple(np.ascontiguousarray(t[2::5, 2::5][:int(round(t.shape[0] * 0.2)), :int(round(t.shape[1] * 0.2))])
                 for t in full)


def _read(folder: Path, name: str) -> np.ndarray:
    expected = f"expected a folder with {', '.join(FILES)} (the ImageNet-C frost images)"
    if not folder.is_dir():
        raise UserError(f"frost folder {folder} not found; {expected}")
    path = folder / name
    if not path.is_file():
        raise UserError(f"frost folder {folder} has no {name}; {expected}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))  # the PNGs are RGBA with alpha 255; cv2.imread drops it
    except Exception as exc:  # Pillow raises many types for bad files
        raise UserError(f"frost texture {path} cannot be read ({exc.__class__.__name__}); {expected}") from None


def generated_texture(h: int, w: int, variant: int) -> np.ndarray:
    """An ice texture of our own: smooth bluish haze plus thin bright crystal needles (fixed seed per variant)."""
    rng = np.random.default_rng(1000 + variant)
    haze = sum(ndimage.gaussian_filter(rng.standard_normal((h, w)), s, mode="wrap") * s
               for s in (4.0, 16.0, 48.0))
    haze = (haze - haze.min()) / (np.ptp(haze) + 1e-12)
    needles = np.zeros((h, w))
    count = int(h * w / 250)
    for _ in range(count):  # branches grow from random seeds in random directions
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        angle = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.02, 0.12) * max(h, w)
        t = np.linspace(0, length, int(length * 2) + 2)
        ys = np.clip((y + t * np.sin(angle)).astype(int), 0, h - 1)
        xs = np.clip((x + t * np.cos(angle)).astype(int), 0, w - 1)
        np.maximum.at(needles, (ys, xs), rng.uniform(0.3, 1.0))
    needles = ndimage.gaussian_filter(needles, 0.004 * max(h, w), mode="wrap")
    needles /= needles.max() + 1e-12
    level = (0.35, 0.75, 0.75, 0.5, 0.4)[variant]  # overall brightness, roughly that of the originals
    t = np.clip(level * 0.6 + 0.5 * (haze - 0.5) + 0.7 * needles, 0, 1)[..., None]
    dark, ice = np.array([40.0, 95.0, 120.0]), np.array([235.0, 240.0, 250.0])
    return (dark + t * (ice - dark)).astype(np.uint8)


def frost(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    a, b = pick(*FROST, severity, ctx)
    n, _, h, w = x.shape
    tex = textures(None if ctx.frost_dir is None else str(ctx.frost_dir), not ctx.large)
    which = ctx.rng.integers(0, 5, size=n)
    crops = np.empty((n, h, w, 3), np.uint8)
    for i, k in enumerate(which):
        t = _cover(tex[k], h, w)
        top = ctx.rng.integers(0, t.shape[0] - h) if t.shape[0] > h else 0
        left = ctx.rng.integers(0, t.shape[1] - w) if t.shape[1] > w else 0
        crops[i] = t[top:top + h, left:left + w]
    layer = ctx.tensor(crops).permute(0, 3, 1, 2).float()  # float32: a random corruption
    return floor_u8_255(layer.mul_(b).add_(x.float(), alpha=a))


def _cover(t: np.ndarray, h: int, w: int) -> np.ndarray:
    """Textures smaller than the image (large images) are scaled up to cover it."""
    if t.shape[0] > h and t.shape[1] > w:
        return t
    s = max((h + 1) / t.shape[0], (w + 1) / t.shape[1])
    size = (int(np.ceil(t.shape[1] * s)), int(np.ceil(t.shape[0] * s)))
    return np.asarray(Image.fromarray(t).resize(size, Image.BILINEAR))
