"""Batched augmentations in torch (CPU or GPU): the views TTT, training and the methods draw.

Images are float NCHW in [0, 1]. Every function takes an explicit torch.Generator so draws are reproducible.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """RandomCrop(size, padding=pad) with zero fill + RandomHorizontalFlip, independently per image."""
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device).to(dev)
    flip = torch.rand(n, generator=gen, device=gen.device).to(dev) < 0.5
    rows = (oy[:, None] + torch.arange(h, device=dev)[None, :])                       # n×h
    cols = ox[:, None] + torch.arange(w, device=dev)[None, :]                         # n×w
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_r = rows[:, None, :, None].expand(n, c, h, w + 2 * pad)
    out = padded.gather(2, idx_r)
    idx_c = cols[:, None, None, :].expand(n, c, h, w)
    return out.gather(3, idx_c)


def rotate(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Rotate image i by labels[i] * 90 degrees counter-clockwise (the TTT rotation task)."""
    out = torch.empty_like(x)
    for k in range(4):
        sel = labels == k
        if sel.any():
            out[sel] = torch.rot90(x[sel], k, dims=(2, 3))
    return out


def random_rotations(n: int, gen: torch.Generator, device) -> torch.Tensor:
    return torch.randint(0, 4, (n,), generator=gen, device=gen.device).to(device)


def simclr_views(x: torch.Tensor, gen: torch.Generator, scale=(0.2, 1.0)) -> torch.Tensor:
    """SimCLR view (TTT++): RandomResizedCrop(scale 0.2–1), flip, ColorJitter(.4,.4,.4,.1) p=.8, gray p=.2."""
    n, c, h, w = x.shape
    dev = x.device
    u = lambda *s: torch.rand(*s, generator=gen, device=gen.device).to(dev)  # noqa: E731
    area = scale[0] + (scale[1] - scale[0]) * u(n)
    logr = torch.log(torch.tensor(3 / 4)) + (torch.log(torch.tensor(4 / 3)) - torch.log(torch.tensor(3 / 4))) * u(n)
    ratio = torch.exp(logr.to(dev))
    cw = torch.sqrt(area * ratio).clamp(max=1.0)
    ch = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (u(n) * (1 - cw)) * 2 - 1 + cw
    cy = (u(n) * (1 - ch)) * 2 - 1 + ch
    sign = torch.where(u(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = cw * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = ch
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, (n, c, h, w), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    jitter = u(n) < 0.8
    b = 1 + (u(n) * 0.8 - 0.4)
    ct = 1 + (u(n) * 0.8 - 0.4)
    s = 1 + (u(n) * 0.8 - 0.4)
    hue = u(n) * 0.2 - 0.1
    jittered = _hue_shift(_saturation(_contrast(v * b[:, None, None, None], ct), s), hue).clamp(0, 1)
    v = torch.where(jitter[:, None, None, None], jittered, v)
    gray = (u(n) < 0.2)[:, None, None, None]
    return torch.where(gray, _gray(v).expand_as(v), v)


def _gray(v):
    return (0.299 * v[:, 0:1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3])


def _contrast(v, f):
    m = _gray(v).mean(dim=(1, 2, 3), keepdim=True)
    return (v - m) * f[:, None, None, None] + m


def _saturation(v, f):
    g = _gray(v)
    return (v - g) * f[:, None, None, None] + g


def _hue_shift(v, shift):
    # Rotate chroma in YIQ space: a cheap, differentiable stand-in for an HSV hue shift.
    ang = shift * 2 * torch.pi
    cos, sin = torch.cos(ang)[:, None, None], torch.sin(ang)[:, None, None]
    r, g, b = v[:, 0], v[:, 1], v[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    i = 0.596 * r - 0.274 * g - 0.322 * b
    q = 0.211 * r - 0.523 * g + 0.312 * b
    i, q = i * cos - q * sin, i * sin + q * cos
    return torch.stack([y + 0.956 * i + 0.621 * q, y - 0.272 * i - 0.647 * q, y - 1.106 * i + 1.703 * q], 1)


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1]."""
    return images_u8.permute(0, 3, 1, 2).float().div_(255.0)
