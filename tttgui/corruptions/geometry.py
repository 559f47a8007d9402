"""elastic_transform: a random affine (cv2.warpAffine, bilinear, reflect-101) followed by a small smooth
displacement field (scipy map_coordinates, order 1, mode 'reflect'), both as torch gathers."""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from tttgui.corruptions.context import Context
from tttgui.corruptions.ops import bilinear, floor_u8, to_unit

# (alpha, sigma, affine jitter) as fractions of the image side (the CIFAR script uses IMSIZE = 32)
ELASTIC = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))


def affine_points(h: int, w: int) -> np.ndarray:
    # the reference mixes (h, w) into (x, y); identical for square images
    center = np.float32([h, w]) // 2
    square = min(h, w) // 3
    return np.float32([center + square, [center[0] + square, center[1] - square], center - square])


def affine_matrices(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """cv2.getAffineTransform for a batch: M (N×2×3) with M @ [x, y, 1] = dst."""
    a = np.concatenate([src.astype(np.float64), np.ones((3, 1))], axis=1)  # 3×3
    return np.linalg.solve(a[None], dst.astype(np.float64)).transpose(0, 2, 1)


def warp_coords(m: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Source (row, col) of cv2.warpAffine: inverse map, coordinates in 1/32 px steps as cv2 computes them."""
    inv = np.linalg.inv(np.concatenate([m, np.tile([[[0.0, 0.0, 1.0]]], (len(m), 1, 1))], axis=1))[:, :2]
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)

    def coord(row):  # cv2: round(M0*x*1024) + round((M1*y + M2)*1024), then >> 5 -> 1/32 px
        a = np.rint(row[:, 0, None, None] * xs[None, None, :] * 1024)
        b = np.rint((row[:, 1, None, None] * ys[None, :, None] + row[:, 2, None, None]) * 1024)
        return np.floor((a + b) / 32) / 32

    return coord(inv[:, 1]), coord(inv[:, 0])


def elastic_transform(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    n, _, h, w = x.shape
    side = min(h, w) if ctx.large else 32
    alpha, sigma, jitter = (side * v for v in ELASTIC[severity - 1])
    src = affine_points(h, w)
    dst = src[None] + ctx.rng.uniform(-jitter, jitter, size=(n, 3, 2)).astype(np.float32)
    rows, cols = warp_coords(affine_matrices(src, dst), h, w)
    xf = to_unit(x, torch.float32)
    xf = bilinear(xf, ctx.tensor(rows), ctx.tensor(cols), "reflect101")
    dx = _field(ctx.rng, n, h, w, sigma, alpha)
    dy = _field(ctx.rng, n, h, w, sigma, alpha)
    grid_r = np.arange(h, dtype=np.float32)[None, :, None] + dy
    grid_c = np.arange(w, dtype=np.float32)[None, None, :] + dx
    if alpha == 0:
        return floor_u8(xf)  # integer coordinates: the second resampling is the identity
    xf = bilinear(xf, ctx.tensor(grid_r.astype(np.float64)), ctx.tensor(grid_c.astype(np.float64)), "symmetric")
    return floor_u8(xf)


def _field(rng, n, h, w, sigma, alpha) -> np.ndarray:
    u = rng.uniform(-1, 1, size=(n, h, w))
    if sigma > 0:
        u = ndimage.gaussian_filter(u, sigma=(0, sigma, sigma), mode="reflect", truncate=3.0)
    return (u * alpha).astype(np.float32)
