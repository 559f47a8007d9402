"""Per-pixel, per-channel noises: gaussian, shot (Poisson), impulse (salt & pepper), speckle."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.special import gammaln

from tttgui.corruptions.context import Context, pick
from tttgui.corruptions.ops import floor_u8, to_unit

GAUSSIAN = ((0.04, 0.06, 0.08, 0.09, 0.10), (0.08, 0.12, 0.18, 0.26, 0.38))
SHOT = ((500, 250, 100, 75, 50), (60, 25, 12, 5, 3))
IMPULSE = ((0.01, 0.02, 0.03, 0.05, 0.07), (0.03, 0.06, 0.09, 0.17, 0.27))
SPECKLE = ((0.06, 0.10, 0.12, 0.16, 0.20), (0.15, 0.2, 0.35, 0.45, 0.6))


def _normal(shape, ctx: Context) -> torch.Tensor:
    # float32 draws are several times faster than float64 and statistically the same at 8-bit output
    return ctx.tensor(ctx.rng.standard_normal(shape, dtype=np.float32)).double()


def gaussian_noise(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    sigma = pick(*GAUSSIAN, severity, ctx)
    return floor_u8(to_unit(x) + _normal(x.shape, ctx) * sigma)


def speckle_noise(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    c = pick(*SPECKLE, severity, ctx)
    xf = to_unit(x)
    return floor_u8(xf + xf * (_normal(x.shape, ctx) * c))


def impulse_noise(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """skimage s&p: each value flips with probability a, to 1 or 0 with probability 1/2 each."""
    a = pick(*IMPULSE, severity, ctx)
    u = ctx.tensor(ctx.rng.random(x.shape, dtype=np.float32))
    xf = to_unit(x)
    xf = torch.where(u < a, (u < a / 2).double(), xf)  # u < a/2 given u < a has probability 1/2
    return floor_u8(xf)


def shot_noise(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """Poisson(x*c)/c. x has only 256 levels, so sample by inverse CDF from per-level tables (exact, fast)."""
    c = pick(*SHOT, severity, ctx)
    lam = np.arange(256, dtype=np.float64) / 255.0 * c
    u = ctx.tensor(ctx.rng.random(x.shape))
    k = poisson_by_level(x.long(), lam, u)
    return floor_u8(k.double() / c)


def poisson_by_level(level: torch.Tensor, lam: np.ndarray, u: torch.Tensor, guide: int = 4096) -> torch.Tensor:
    """Smallest k with CDF_level(k) >= u, using a guide table so that ~1 correction step is needed."""
    cdf, starts = _tables(tuple(lam.tolist()), guide)
    kmax = cdf.shape[1]
    dev = u.device
    cdf_t = torch.as_tensor(cdf.ravel(), device=dev)
    starts_t = torch.as_tensor(starts.ravel(), device=dev)
    j = (u * guide).long().clamp_(0, guide - 1)
    out = starts_t[level * guide + j].reshape(-1)
    base, u = (level * kmax).reshape(-1), u.reshape(-1)
    todo = torch.nonzero(cdf_t[base + out] < u).squeeze(1)
    while len(todo):  # the few values whose guide cell spans a CDF step
        out[todo] += 1
        todo = todo[cdf_t[base[todo] + out[todo]] < u[todo]]
    return out.reshape(level.shape)


@lru_cache(maxsize=16)
def _tables(lam_levels: tuple, guide: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-level Poisson CDFs and guide tables (smallest k with CDF(k) > j/guide)."""
    lam = np.array(lam_levels)
    top = float(lam.max())
    kmax = int(top + 12.0 * np.sqrt(top) + 30)
    k = np.arange(kmax)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = k[None, :] * np.log(lam[:, None]) - lam[:, None] - gammaln(k + 1.0)[None, :]
    logp[lam == 0] = -np.inf
    logp[lam == 0, 0] = 0.0
    cdf = np.cumsum(np.exp(logp), axis=1)
    cdf[cdf > 1.0 - 1e-14] = 1.0  # ends the rounding plateau just below 1 (tail mass < 1e-14)
    cdf[:, -1] = 1.0
    starts = np.stack([np.searchsorted(row, np.arange(guide) / guide, side="right") for row in cdf])
    return cdf, np.minimum(starts, kmax - 1)
