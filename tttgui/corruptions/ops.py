"""Small torch helpers shared by the corruptions: flooring, padding, separable shifted-sum filters, bilinear
sampling. Images inside the package are torch tensors N×C×H×W (float32 unless a closed form needs float64).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_unit(x: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """uint8 -> [0,1] in the reference's precision (x / 255.)."""
    return x.to(dtype) / 255.0


def floor_u8(y: torch.Tensor) -> torch.Tensor:
    """The reference's `np.uint8(np.clip(y, 0, 1) * 255)`: clip, scale, truncate (not round)."""
    return (y.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def floor_u8_255(y: torch.Tensor) -> torch.Tensor:
    """Same for results already on the 0..255 scale (`np.uint8(np.clip(y, 0, 255))`)."""
    return y.clamp(0.0, 255.0).to(torch.uint8)


def pad_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source indices for padding a length-n axis.

    mode: 'nearest' (edge replicate), 'reflect101' (cv2 default, d c b | a b c), 'symmetric' (scipy 'reflect',
    c b a | a b c), 'wrap'. Works for pads longer than the axis by folding repeatedly.
    """
    idx = np.arange(-before, n + after)
    if mode == "nearest":
        return np.clip(idx, 0, n - 1)
    if mode == "wrap":
        return idx % n
    if mode == "symmetric":
        period = 2 * n
        m = idx % period
        return np.where(m < n, m, period - 1 - m)
    if mode == "reflect101":
        if n == 1:
            return np.zeros_like(idx)
        period = 2 * n - 2
        m = idx % period
        return np.where(m < n, m, period - m)
    raise ValueError(mode)


def pad(x: torch.Tensor, ph: int, pw: int, mode: str) -> torch.Tensor:
    """Pad the last two axes by (ph, pw) on each side with the given mode."""
    fast = {"nearest": "replicate", "reflect101": "reflect"}.get(mode)
    if fast and x.dim() == 4 and x.is_floating_point() and ph < x.shape[-2] and pw < x.shape[-1]:
        return F.pad(x, (pw, pw, ph, ph), mode=fast)  # torch's native kernels, much faster than index_select
    if mode == "symmetric" and ph <= x.shape[-2] and pw <= x.shape[-1]:  # mirrored edge slices, no gather
        if ph:
            x = torch.cat([x[..., :ph, :].flip(-2), x, x[..., x.shape[-2] - ph:, :].flip(-2)], dim=-2)
        if pw:
            x = torch.cat([x[..., :pw].flip(-1), x, x[..., x.shape[-1] - pw:].flip(-1)], dim=-1)
        return x
    if ph:
        x = x.index_select(-2, torch.as_tensor(pad_index(x.shape[-2], ph, ph, mode), device=x.device))
    if pw:
        x = x.index_select(-1, torch.as_tensor(pad_index(x.shape[-1], pw, pw, mode), device=x.device))
    return x


def correlate1d(x: torch.Tensor, k: np.ndarray, axis: int, mode: str) -> torch.Tensor:
    r = len(k) // 2
    if r == 0:
        return x * float(k[0])
    n = x.shape[axis]
    axis = axis % x.dim()
    xp = pad(x, r if axis == x.dim() - 2 else 0, r if axis == x.dim() - 1 else 0, mode)
    out = torch.zeros_like(x)
    for i, w in enumerate(k):
        out.add_(xp.narrow(axis, i, n), alpha=float(w))
    return out


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's kernel (what skimage.filters.gaussian uses): radius int(truncate*sigma + 0.5)."""
    radius = int(truncate * float(sigma) + 0.5)
    if radius == 0 or sigma <= 0:
        return np.ones(1)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 / (sigma * sigma) * t * t)
    return k / k.sum()


def gaussian(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """skimage.filters.gaussian on the two spatial axes (channels independent)."""
    k = gaussian_kernel1d(sigma, truncate)
    if len(k) == 1:
        return x.clone()
    return correlate1d(correlate1d(x, k, -2, mode), k, -1, mode)


def bilinear(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, mode: str) -> torch.Tensor:
    """Bilinear sampling at float coordinates (N×H'×W'); integer neighbours outside go through `mode`.

    grid_sample on the image padded (by `mode`) just enough for the coordinates given: one fused kernel
    instead of four gathers, and every neighbour inside the padded image, so the result is exact.
    """
    h, w = x.shape[-2:]
    ph = int(max(0.0, -float(rows.min()), float(rows.max()) - (h - 1))) + 2
    pw = int(max(0.0, -float(cols.min()), float(cols.max()) - (w - 1))) + 2
    xp = pad(x, ph, pw, mode)
    grid = torch.stack([cols.to(x.dtype).add_(pw).mul_(2.0 / (w + 2 * pw - 1)).sub_(1.0),
                        rows.to(x.dtype).add_(ph).mul_(2.0 / (h + 2 * ph - 1)).sub_(1.0)], dim=-1)
    return F.grid_sample(xp, grid, mode="bilinear", padding_mode="border", align_corners=True)
