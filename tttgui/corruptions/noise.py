"""Per-pixel, per-channel noises: gaussian, shot (Poisson), impulse (salt & pepper), speckle.

The noise is drawn and applied on the CPU in float32 (numpy): it is cheap elementwise work dominated by the
draws, and float32 noise at an 8-bit output has the reference's statistics. Shot noise samples its 8-bit
output exactly from per-level tables (alias method) instead of drawing Poisson variates.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.special import gammaln

from tttgui.corruptions.context import Context, pick

GAUSSIAN = ((0.04, 0.06, 0.08, 0.09, 0.10), (0.08, 0.12, 0.18, 0.26, 0.38))
SHOT = ((500, 250, 100, 75, 50), (60, 25, 12, 5, 3))
IMPULSE = ((0.01, 0.02, 0.03, 0.05, 0.07), (0.03, 0.06, 0.09, 0.17, 0.27))
SPECKLE = ((0.06, 0.10, 0.12, 0.16, 0.20), (0.15, 0.2, 0.35, 0.45, 0.6))


def _host(x: torch.Tensor) -> np.ndarray:
    return x.cpu().numpy()


def _floor_255(y: np.ndarray) -> np.ndarray:
    """np.uint8(np.clip(y, 0, 255)) in place on a float32 array already on the 0..255 scale."""
    np.clip(y, 0, 255, out=y)
    return y.astype(np.uint8)


def gaussian_noise(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    sigma = pick(*GAUSSIAN, severity, ctx)
    y = ctx.rng.standard_normal(x.shape, dtype=np.float32)
    y *= np.float32(sigma * 255)
    y += _host(x)
    return ctx.tensor(_floor_255(y))


def speckle_noise(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    c = pick(*SPECKLE, severity, ctx)
    y = ctx.rng.standard_normal(x.shape, dtype=np.float32)
    y *= np.float32(c)
    y += np.float32(1)
    y *= _host(x)  # x + x*c*n
    return ctx.tensor(_floor_255(y))


def impulse_noise(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """skimage s&p: each value flips with probability a, to 255 or 0 with probability 1/2 each."""
    a = pick(*IMPULSE, severity, ctx)
    u = ctx.rng.random(x.shape, dtype=np.float32)
    y = _host(x).copy()
    y[u < np.float32(a)] = 0
    y[u < np.float32(a / 2)] = 255  # u < a/2 given u < a has probability 1/2
    return ctx.tensor(y)


def shot_noise(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """uint8(clip(Poisson(x*c)/c, 0, 1)*255), sampled exactly per input level (x has only 256 levels)."""
    c = pick(*SHOT, severity, ctx)
    table = shot_table(float(c))
    level = _host(x).reshape(-1)
    # 32 random bits per value: the top 8 pick an alias cell, the low 24 decide between cell and alias
    r = ctx.rng.bit_generator.random_raw((level.size + 1) // 2).view(np.uint32)[:level.size]
    cell = r >> 24
    e = level.astype(np.uint32)
    e <<= 8
    e |= cell
    e = table.take(e)  # (threshold << 8) | alias
    r <<= 8
    r |= 255
    keep = r < e  # low 24 bits < threshold
    e &= 255
    out = np.where(keep, cell, e).astype(np.uint8)
    return ctx.tensor(out.reshape(x.shape))


@lru_cache(maxsize=16)
def shot_table(c: float) -> np.ndarray:
    """Alias tables (256 input levels × 256 cells, uint32 = threshold24 << 8 | alias) of the output's law."""
    lam = np.arange(256, dtype=np.float64) / 255.0 * c
    kmax = int(lam.max() + 12.0 * np.sqrt(lam.max()) + 30)
    k = np.arange(kmax)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = k[None, :] * np.log(lam[:, None]) - lam[:, None] - gammaln(k + 1.0)[None, :]
    logp[0] = -np.inf
    logp[0, 0] = 0.0
    value = (np.clip(k / c, 0, 1) * 255).astype(np.uint8)  # the reference's output for each count k
    pmf = np.zeros((256, 256))
    np.add.at(pmf.T, value, np.exp(logp).T)
    return alias_tables(pmf / pmf.sum(axis=1, keepdims=True))


def alias_tables(pmf: np.ndarray) -> np.ndarray:
    """Walker alias tables for each row of an R×256 pmf (Robin Hood pairing: smallest with largest)."""
    rows, n = pmf.shape
    q = pmf * n
    thr = np.ones((rows, n))
    alias = np.tile(np.arange(n), (rows, 1))
    open_ = np.ones((rows, n), bool)
    r = np.arange(rows)
    for _ in range(n - 1):
        s = np.where(open_, q, np.inf).argmin(axis=1)
        big = np.where(open_, q, -np.inf)
        big[r, s] = -np.inf
        l = big.argmax(axis=1)
        thr[r, s] = np.clip(q[r, s], 0, 1)
        alias[r, s] = l
        q[r, l] -= 1.0 - q[r, s]
        open_[r, s] = False
    t24 = np.minimum(np.rint(thr * (1 << 24)), (1 << 24) - 1).astype(np.uint32)
    full = thr >= 1.0 - 2.0 ** -24
    alias = np.where(full, np.arange(n)[None, :], alias).astype(np.uint32)  # a full cell never picks its alias
    return ((t24 << 8) | alias).ravel()
