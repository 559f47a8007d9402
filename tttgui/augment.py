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


# -- AugMix (Hendrycks et al. 2020) as MEMO draws it for CIFAR-10 ---------------------------------------------
# Ops and level ranges follow the AugMix reference augmentations (colour/contrast/brightness/sharpness excluded):
# level ~ U(0.1, severity); rotate int(level*3) degrees, shear level*0.03, translate int(level*size/30) px
# (random sign each), solarize threshold 256 - int(level*25.6), posterize to 4 - int(level*0.4) bits.
AUGMIX_OPS = ("autocontrast", "equalize", "rotate", "solarize", "shear_x", "shear_y", "translate_x",
              "translate_y", "posterize")


def augmix_views(x: torch.Tensor, gen: torch.Generator, severity: float = 1.0, width: int = 3,
                 max_depth: int = 3) -> torch.Tensor:
    """One AugMix view of every image in x (float NCHW in [0, 1]): `width` chains of 1..max_depth random ops,
    mixed with Dirichlet(1) weights, then blended with the original by m ~ Beta(1, 1). Batched: each (chain,
    depth) slot applies every op to the views that drew it."""
    n = len(x)
    dev = x.device
    u = lambda *s: torch.rand(*s, generator=gen, device=gen.device).to(dev)  # noqa: E731
    w = -torch.log(u(n, width).clamp_min(1e-12))
    w = w / w.sum(1, keepdim=True)                                    # Dirichlet(1, ..., 1)
    m = u(n)                                                          # Beta(1, 1)
    mix = torch.zeros_like(x)
    for c in range(width):
        depth = torch.randint(1, max_depth + 1, (n,), generator=gen, device=gen.device).to(dev)
        chain = x.clone()
        for d in range(max_depth):
            ops = torch.randint(0, len(AUGMIX_OPS), (n,), generator=gen, device=gen.device).to(dev)
            level = 0.1 + (severity - 0.1) * u(n)
            sign = torch.where(u(n) < 0.5, -1.0, 1.0)
            active = depth > d
            for k, name in enumerate(AUGMIX_OPS):
                sel = (active & (ops == k)).nonzero().flatten()
                if len(sel):
                    chain[sel] = _augmix_op(name, chain[sel], level[sel], sign[sel])
        mix = mix + w[:, c, None, None, None] * chain
    return ((1 - m)[:, None, None, None] * x + m[:, None, None, None] * mix).clamp(0, 1)


def _augmix_op(name: str, v: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    n, _, h, w = v.shape
    if name == "autocontrast":
        lo = v.amin(dim=(2, 3), keepdim=True)
        hi = v.amax(dim=(2, 3), keepdim=True)
        scale = torch.where(hi > lo, 1.0 / (hi - lo).clamp_min(1e-6), torch.ones_like(hi))
        return torch.where(hi > lo, (v - lo) * scale, v)
    if name == "equalize":
        return _equalize(v)
    if name == "solarize":
        t = (256 - (level * 25.6).floor())[:, None, None, None] / 255
        return torch.where(v >= t, 1 - v, v)
    if name == "posterize":
        bits = (4 - (level * 0.4).floor()).to(torch.int64)
        q = (v * 255).round().to(torch.int64)
        mask = (255 << (8 - bits))[:, None, None, None] & 255
        return (q & mask).float() / 255
    theta = torch.zeros(n, 2, 3, device=v.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    if name == "rotate":
        ang = (level * 3).floor() * sign * torch.pi / 180
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(ang), -torch.sin(ang)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(ang), torch.cos(ang)
    elif name in ("shear_x", "shear_y"):
        s = level * 0.03 * sign                       # input = output + s * other axis (from the top/left edge)
        r = 0 if name == "shear_x" else 1
        theta[:, r, 1 - r] = s
        theta[:, r, 2] = s
    else:
        px = (level * w / 30).floor() * sign if name == "translate_x" else (level * h / 30).floor() * sign
        theta[:, 0 if name == "translate_x" else 1, 2] = 2 * px / (w if name == "translate_x" else h)
    grid = F.affine_grid(theta, (n, 3, h, w), align_corners=False)
    return F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _equalize(v: torch.Tensor) -> torch.Tensor:
    """PIL's ImageOps.equalize per image and channel, batched: lut[i] = (step // 2 + #pixels below i) // step
    with step = (pixels - count of the brightest level) // 255; identity where step is 0."""
    n, c, h, w = v.shape
    q = (v * 255).round().long().clamp(0, 255).reshape(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=v.device).scatter_add_(1, q, torch.ones_like(q))
    last = hist.gather(1, q.amax(1, keepdim=True))
    step = (h * w - last) // 255
    below = hist.cumsum(1) - hist
    lut = ((step // 2 + below) // step.clamp_min(1)).clamp(max=255)
    lut = torch.where(step > 0, lut, torch.arange(256, device=v.device).expand_as(lut))
    return lut.gather(1, q).reshape(n, c, h, w).float() / 255
