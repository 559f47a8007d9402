"""Small torch helpers shared by the corruptions: flooring, padding indices, shifted-sum filters, gathers.

Images inside the package are torch tensors N×C×H×W. Filters are written as sums of shifted slices rather
than conv2d because the reference computes in float64 and torch's float64 conv2d is very slow on CPU.
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
    if ph:
        x = x.index_select(-2, torch.as_tensor(pad_index(x.shape[-2], ph, ph, mode), device=x.device))
    if pw:
        x = x.index_select(-1, torch.as_tensor(pad_index(x.shape[-1], pw, pw, mode), device=x.device))
    return x


def correlate2d(x: torch.Tensor, kernel: np.ndarray, mode: str) -> torch.Tensor:
    """Correlation (cv2.filter2D / scipy.ndimage.correlate) with an odd 2-D kernel, as a sum of shifts."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    h, w = x.shape[-2:]
    xp = pad(x, ph, pw, mode)
    out = torch.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j] != 0:
                out.add_(xp[..., i:i + h, j:j + w], alpha=float(kernel[i, j]))
    return out


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


def gather2d(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """out[n,c,i,j] = x[n,c,rows[n,i,j],cols[n,i,j]] (rows/cols long, already inside the image)."""
    n, c, h, w = x.shape
    flat = (rows * w + cols).reshape(n, 1, -1).expand(n, c, -1)
    return x.reshape(n, c, h * w).gather(2, flat).reshape(n, c, *rows.shape[1:])


def bilinear(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, mode: str) -> torch.Tensor:
    """Bilinear sampling at float coordinates (N×H'×W'); integer neighbours outside go through `mode`."""
    h, w = x.shape[-2:]
    r0, c0 = torch.floor(rows), torch.floor(cols)
    fr, fc = (rows - r0).unsqueeze(1).to(x.dtype), (cols - c0).unsqueeze(1).to(x.dtype)
    r0, c0 = r0.long(), c0.long()
    rmap = _index_map(h, mode, x.device)
    cmap = _index_map(w, mode, x.device)
    pad_r, pad_c = rmap[1], cmap[1]

    def at(r, c):
        return gather2d(x, rmap[0][(r + pad_r).clamp(0, len(rmap[0]) - 1)],
                        cmap[0][(c + pad_c).clamp(0, len(cmap[0]) - 1)])

    top = at(r0, c0) * (1 - fc) + at(r0, c0 + 1) * fc
    bottom = at(r0 + 1, c0) * (1 - fc) + at(r0 + 1, c0 + 1) * fc
    return top * (1 - fr) + bottom * fr


def _index_map(n: int, mode: str, device) -> tuple[torch.Tensor, int]:
    # Coordinates never stray more than a few image sizes out; 3n on each side is plenty.
    p = 3 * n
    return torch.as_tensor(pad_index(n, p, p, mode), device=device), p

