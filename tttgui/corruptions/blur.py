"""Blurs: defocus (aliased disk), glass (local pixel copies), motion (ImageMagick's kernel), zoom, gaussian."""
from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from tttgui.corruptions.context import Context, pick
from tttgui.corruptions.ops import floor_u8, gaussian, pad, to_unit

DEFOCUS = (((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
           ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)))
GLASS = (((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
         ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)))
MOTION = (((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
          ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)))
# np.arange(1, zmax, step): the float arange gives 7, 12, 16, 21, 26 factors for CIFAR (see corruptions.md)
ZOOM = (((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
        ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)))
GAUSSIAN_BLUR = ((0.4, 0.6, 0.7, 0.8, 1.0), (1, 2, 3, 4, 6))


# ---- defocus -------------------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def defocus_kernel(radius: float, alias: float) -> np.ndarray:
    """Binary disk on a 17×17 grid (wider for r > 8), normalised, then cv2.GaussianBlur(3×3, alias); float32."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 9), 3
    else:
        grid, ksize = np.arange(-radius, radius + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    t = np.arange(ksize) - ksize // 2
    g = np.exp(-(t * t) / (2.0 * alias * alias))
    g = (g / g.sum()).astype(np.float32)
    k = disk
    for axis in (0, 1):  # separable, reflect-101 borders (irrelevant: the disk is zero there)
        r = ksize // 2
        idx = np.abs(np.arange(-r, k.shape[axis] + r))
        idx = np.where(idx >= k.shape[axis], 2 * k.shape[axis] - 2 - idx, idx)
        kp = np.take(k, idx, axis=axis)
        k = sum(g[i] * np.take(kp, np.arange(i, i + k.shape[axis]), axis=axis) for i in range(ksize))
    k = k.astype(np.float32)
    rows, cols = np.nonzero(k)
    c = k.shape[0] // 2
    r = max(np.abs(rows - c).max(), np.abs(cols - c).max())
    return k[c - r:c + r + 1, c - r:c + r + 1]  # exact crop: entries outside are zero


def defocus_blur(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """float32 conv2d (one kernel for every channel): within the ±1 tolerance of the float64 reference."""
    kernel = defocus_kernel(*pick(*DEFOCUS, severity, ctx))
    n, c, h, w = x.shape
    r = kernel.shape[0] // 2
    xp = pad(to_unit(x, torch.float32).reshape(n * c, 1, h, w), r, r, "reflect101")
    k = torch.as_tensor(kernel, dtype=torch.float32, device=x.device)[None, None]
    return floor_u8(F.conv2d(xp, k).reshape(n, c, h, w))


# ---- gaussian ------------------------------------------------------------------------------------------------
def gaussian_blur(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    # float32: within the ±1 tolerance of the float64 reference
    return floor_u8(gaussian(to_unit(x, torch.float32), pick(*GAUSSIAN_BLUR, severity, ctx), mode="nearest"))


# ---- glass ---------------------------------------------------------------------------------------------------
def glass_draws(rng: np.random.Generator, n: int, h: int, w: int, delta: int, iterations: int) -> np.ndarray:
    """(dx, dy) per image, pass, h (descending from h-delta) and w (descending): N×iters×nh×nw×2, in [-d, d-1]."""
    nh, nw = max(h - 2 * delta, 0), max(w - 2 * delta, 0)
    return rng.integers(-delta, delta, size=(n, iterations, nh, nw, 2), dtype=np.int64)


def glass_shuffle(x: torch.Tensor, draws: np.ndarray, delta: int) -> torch.Tensor:
    """The reference's `x[h,w], x[h',w'] = x[h',w'], x[h,w]` on numpy views: a copy from the up/left neighbour.

    With delta 1 the source was not yet touched in the pass, so a pass is one gather (verified in the notes).
    Larger deltas (ImageNet parameters) can read already-copied pixels, so they run the exact loop.
    """
    if delta != 1:
        out = x.permute(0, 2, 3, 1).cpu().numpy().copy()
        for i in range(len(out)):
            for p in range(draws.shape[1]):
                glass_loop(out[i], draws[i, p], delta)
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device).contiguous()
    n, _, h, w = x.shape
    base_r = torch.arange(h, device=x.device).view(1, h, 1).expand(n, h, w)
    base_c = torch.arange(w, device=x.device).view(1, 1, w).expand(n, h, w)
    flat = x.reshape(n, x.shape[1], h * w)
    for p in range(draws.shape[1]):
        d = torch.as_tensor(draws[:, p, ::-1, ::-1].copy(), device=x.device)  # ascending h, w
        rows, cols = base_r.clone(), base_c.clone()
        rows[:, delta + 1:h - delta + 1, delta + 1:w - delta + 1] += d[..., 1]
        cols[:, delta + 1:h - delta + 1, delta + 1:w - delta + 1] += d[..., 0]
        idx = (rows * w + cols).reshape(n, 1, h * w).expand(-1, x.shape[1], -1)
        flat = flat.gather(2, idx)
    return flat.reshape(x.shape)


def glass_loop(img: np.ndarray, draws: np.ndarray, delta: int) -> None:
    """One pass of the reference loop on an H×W×C array, in place (draws: nh×nw×2, loop order)."""
    h, w = img.shape[:2]
    for ih, hh in enumerate(range(h - delta, delta, -1)):
        for iw, ww in enumerate(range(w - delta, delta, -1)):
            dx, dy = draws[ih, iw]
            hp, wp = hh + dy, ww + dx
            img[hh, ww], img[hp, wp] = img[hp, wp], img[hh, ww]


def glass_blur(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    sigma, delta, iterations = pick(*GLASS, severity, ctx)
    n, _, h, w = x.shape
    y = floor_u8(gaussian(to_unit(x, torch.float32), sigma))  # float32: a random corruption
    y = glass_shuffle(y, glass_draws(ctx.rng, n, h, w, delta, iterations), delta)
    return floor_u8(gaussian(to_unit(y, torch.float32), sigma))


# ---- motion --------------------------------------------------------------------------------------------------
def motion_taps(radius: float, sigma: float, angle_deg: float) -> list[tuple[float, int, int]]:
    """ImageMagick 6 MotionBlurImage: width 2*ceil(R)+1, one-sided Gaussian weights, rounded offsets (k, dy, dx)."""
    width = 2 * int(math.ceil(radius)) + 1
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i * i) / (2.0 * sigma * sigma))
    k /= k.sum()
    px, py = width * math.sin(math.radians(angle_deg)), width * math.cos(math.radians(angle_deg))
    hyp = math.hypot(px, py)
    ox = np.ceil(i * py / hyp - 0.5).astype(int)
    oy = np.ceil(i * px / hyp - 0.5).astype(int)
    return [(float(k[j]), int(oy[j]), int(ox[j])) for j in range(width)]


def motion_offsets(width: int, angles: np.ndarray) -> np.ndarray:
    """motion_taps' rounded (dy, dx) for many angles at once: N×width×2."""
    i = np.arange(width, dtype=np.float64)[None, :]
    rad = np.radians(np.asarray(angles, dtype=np.float64))[:, None]
    px, py = width * np.sin(rad), width * np.cos(rad)
    hyp = np.hypot(px, py)
    return np.stack([np.ceil(i * px / hyp - 0.5), np.ceil(i * py / hyp - 0.5)], axis=-1).astype(np.int64)


def motion_apply(x: torch.Tensor, radius: float, sigma: float, angles: np.ndarray) -> torch.Tensor:
    """Per-image angle; edge-replicating virtual pixels; IM's 8-bit output is floor-like (notes §2).

    Images are sorted by angle, so that each tap's offset is constant over runs of neighbouring images: one
    slice-add per run instead of a gather per image.
    """
    n, c, h, w = x.shape
    weights = [t[0] for t in motion_taps(radius, sigma, 0.0)]  # the weights do not depend on the angle
    width = len(weights)
    p = width - 1
    order = np.argsort(angles, kind="stable")
    offsets = motion_offsets(width, np.asarray(angles)[order])  # N×width×2, sorted images
    xs = x if n == 1 else x.index_select(0, torch.as_tensor(order, device=x.device))
    xp = pad(xs.float(), p, p, "nearest")
    out = torch.zeros(n, c, h, w, dtype=torch.float32, device=x.device)
    for i, k in enumerate(weights):
        if k < 1e-9:  # contributes < 3e-7 grey levels: far below the output's 1-LSB quantisation
            continue
        off = offsets[:, i]
        cuts = np.flatnonzero((off[1:] != off[:-1]).any(axis=1)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, n]):
            dy, dx = off[a]
            out[a:b].add_(xp[a:b, :, p + dy:p + dy + h, p + dx:p + dx + w], alpha=k)
    out = (out + 1e-3).floor_().clamp_(0, 255).to(torch.uint8)
    if n == 1:
        return out
    return out.index_select(0, torch.as_tensor(np.argsort(order), device=x.device))


def motion_blur(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    radius, sigma = pick(*MOTION, severity, ctx)
    angles = ctx.rng.uniform(-45, 45, size=len(x))
    return motion_apply(x, radius, sigma, angles)


# ---- zoom ----------------------------------------------------------------------------------------------------
def zoom_factors(severity: int, large: bool) -> np.ndarray:
    zmax, step = ZOOM[1 if large else 0][severity - 1]
    return np.arange(1, zmax, step)


def zoom_matrix(n: int, z: float) -> np.ndarray:
    """1-D operator of clipped_zoom on an axis of length n: centre crop ceil(n/z), scipy zoom(order=1), trim."""
    ch = int(np.ceil(n / z))
    top = (n - ch) // 2
    out = int(round(ch * z))
    trim = (out - n) // 2
    a = np.zeros((n, n))
    scale = (ch - 1) / (out - 1) if out > 1 else 0.0
    for o in range(n):
        src = (o + trim) * scale
        i0 = min(int(np.floor(src)), ch - 1)
        f = src - i0
        a[o, top + i0] += 1 - f
        if f > 0:
            a[o, top + i0 + 1] += f
    return a


@lru_cache(maxsize=32)
def zoom_layers(h: int, w: int, factors: tuple) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Distinct (rows, cols) operators with how many factors share them (many factors round to the same crop)."""
    groups: dict[tuple, list] = {}
    for z in factors:
        ah, aw = zoom_matrix(h, z), zoom_matrix(w, z)
        key = (ah.tobytes(), aw.tobytes())
        groups.setdefault(key, [0, ah, aw])[0] += 1
    return [tuple(v) for v in groups.values()]


def zoom_blur(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """(x + sum of zoomed copies) / (n + 1), float32 as in the reference."""
    n, c, h, w = x.shape
    factors = tuple(zoom_factors(severity, ctx.large))
    xf = to_unit(x, torch.float32)
    if h * w <= 64 * 64:  # small images: the whole sum is one sparse (h·w)² operator, one product
        op = zoom_operator(h, w, factors).to(x.device)
        return floor_u8(torch.sparse.mm(op, xf.reshape(n * c, h * w).t()).t().reshape(n, c, h, w))
    acc = xf.clone()
    for count, ah, aw in zoom_layers(h, w, factors):
        if np.array_equal(ah, np.eye(h)) and np.array_equal(aw, np.eye(w)):
            acc.add_(xf, alpha=count)
            continue
        ah_t = torch.as_tensor(ah.T, dtype=torch.float32, device=x.device)
        aw_t = torch.as_tensor(aw.T, dtype=torch.float32, device=x.device)
        # (A X Bᵀ) as two plain matrix products over all rows (a broadcast A @ X would be a batched bmm)
        acc.add_(((xf @ aw_t).transpose(-1, -2) @ ah_t).transpose(-1, -2), alpha=count)
    return floor_u8(acc / (len(factors) + 1))


@lru_cache(maxsize=16)
def zoom_operator(h: int, w: int, factors: tuple) -> torch.Tensor:
    """(I + Σ_z A_z ⊗ B_z) / (n + 1) as a sparse CSR matrix acting on flattened images (bilinear: few nonzeros)."""
    m = np.eye(h * w)
    for count, ah, aw in zoom_layers(h, w, factors):
        m += count * np.kron(ah, aw)
    m = torch.from_numpy((m / (len(factors) + 1)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta": the product used here is stable
        return m.to_sparse_csr()
