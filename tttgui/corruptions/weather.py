"""Weather: snow, fog (plasma fractal), spatter (water / mud). Random layers are image-independent: they are
drawn on the CPU as a batch and blended with the images in torch."""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from tttgui.corruptions import cvlike
from tttgui.corruptions.blur import motion_apply, zoom_matrix
from tttgui.corruptions.context import Context, pick
from tttgui.corruptions.ops import floor_u8, to_unit

# (mu, s, zoom, thr, R, sigma_mb, blend). The notes give CIFAR values only; larger images use them too.
SNOW = ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))
FOG = (((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
       ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)))
# (mu, s, sigma, thr, k, mode 0 water / 1 mud); CIFAR values (used for every size).
SPATTER = ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
           (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1))


# ---- snow ----------------------------------------------------------------------------------------------------
def snow_layer(rng: np.random.Generator, n: int, h: int, w: int, severity: int) -> np.ndarray:
    """S in [0,1], N×H×W: zoomed thresholded Gaussian field, as 8-bit gray, motion-blurred roughly downwards."""
    mu, s, zoom, thr, radius, sigma, _ = SNOW[severity - 1]
    field = rng.standard_normal((n, h, w), dtype=np.float32) * np.float32(s) + np.float32(mu)
    if zoom != 1:
        field = zoom_matrix(h, zoom).astype(np.float32) @ field @ zoom_matrix(w, zoom).T.astype(np.float32)
    field[field < thr] = 0
    gray = (np.clip(field, 0, 1) * 255).astype(np.uint8)
    angles = rng.uniform(-135, -45, size=n)
    blurred = motion_apply(torch.from_numpy(gray[:, None]), radius, sigma, angles)
    return blurred[:, 0].numpy().astype(np.float32) / np.float32(255)


def snow(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    n, _, h, w = x.shape
    blend = SNOW[severity - 1][6]
    layer = ctx.tensor(snow_layer(ctx.rng, n, h, w, severity)).unsqueeze(1)
    xf = to_unit(x, torch.float32)
    gray = 0.299 * xf[:, 0:1] + 0.587 * xf[:, 1:2] + 0.114 * xf[:, 2:3]
    xf = blend * xf + (1 - blend) * torch.maximum(xf, gray * 1.5 + 0.5)
    return floor_u8(xf.add_(layer + torch.flip(layer, dims=(-2, -1))))  # float32: a random corruption


# ---- fog -----------------------------------------------------------------------------------------------------
def plasma_fractal(rng: np.random.Generator, n: int, mapsize: int, decay: float) -> np.ndarray:
    """Diamond-square on a mapsize×mapsize torus, corner 0, min-max normalised; N maps at once."""
    a = np.zeros((n, mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wibbled(arr):
        return arr / 4 + wibble * rng.uniform(-wibble, wibble, arr.shape)

    while step >= 2:
        half = step // 2
        corners = a[:, 0::step, 0::step]
        sq = corners + np.roll(corners, -1, axis=1)
        sq = sq + np.roll(sq, -1, axis=2)
        a[:, half::step, half::step] = wibbled(sq)
        dr = a[:, half::step, half::step]
        ul = a[:, 0::step, 0::step]
        lt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2)
        a[:, 0::step, half::step] = wibbled(lt)
        tt = dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1)
        a[:, half::step, 0::step] = wibbled(tt)
        step //= 2
        wibble /= decay
    a -= a.min(axis=(1, 2), keepdims=True)
    return a / a.max(axis=(1, 2), keepdims=True)


def fog(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    a, decay = pick(*FOG, severity, ctx)
    n, _, h, w = x.shape
    mapsize = 1 << int(np.ceil(np.log2(max(h, w, 2))))
    plasma = ctx.tensor(plasma_fractal(ctx.rng, n, mapsize, decay)[:, None, :h, :w].astype(np.float32))
    xf = to_unit(x, torch.float32)  # float32: a random corruption
    top = xf.amax(dim=(1, 2, 3), keepdim=True)
    return floor_u8((xf + a * plasma) * top / (top + a))


# ---- spatter -------------------------------------------------------------------------------------------------
WATER = (175, 238, 238)
MUD = (63, 42, 20)
EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])


def spatter_mask(rng: np.random.Generator, n: int, h: int, w: int, severity: int) -> np.ndarray:
    """N×H×W mask m in [0,1] (water: the embossed distance-to-edge ripple; mud: the blurred blobs)."""
    mu, s, sigma, thr, k, mode = SPATTER[severity - 1]
    liquid = rng.normal(mu, s, size=(n, h, w))
    liquid = ndimage.gaussian_filter(liquid, sigma=(0, sigma, sigma), mode="nearest", truncate=4.0)
    liquid[liquid < thr] = 0
    if mode == 1:
        m = ndimage.gaussian_filter((liquid > thr).astype(np.float32).astype(np.float64), sigma=(0, k, k),
                                    mode="nearest", truncate=4.0)
        m[m < 0.8] = 0
        return m
    lu = (liquid * 255).astype(np.uint8)
    edges = cvlike.canny(lu, 50, 150)
    dist = np.minimum(cvlike.distance_to_zero(~edges), np.float32(20))
    dist = cvlike.blur3x3(dist).astype(np.float32).astype(np.uint8)
    dist = cvlike.equalize_hist(dist)
    dist = np.clip(cvlike.correlate3x3(dist, EMBOSS, "reflect101"), 0, 255).astype(np.uint8)
    dist = np.rint(cvlike.blur3x3(dist)).astype(np.float32)
    m = lu.astype(np.float32) * dist
    top = m.max(axis=(1, 2), keepdims=True)
    m = np.divide(m, top, out=np.zeros_like(m), where=top > 0)  # an empty mask stays empty (no NaN)
    return m * np.float32(k)


def spatter(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    n, _, h, w = x.shape
    mode = SPATTER[severity - 1][5]
    m = ctx.tensor(spatter_mask(ctx.rng, n, h, w, severity)).unsqueeze(1).float()  # float32: random
    xf = to_unit(x, torch.float32)
    if mode == 0:
        color = torch.tensor(WATER, dtype=torch.float32, device=x.device).view(1, 3, 1, 1) / 255.0
        return floor_u8(xf + m * color)
    color = torch.tensor(MUD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1) / 255.0
    return floor_u8(xf * (1 - m) + m * color)
