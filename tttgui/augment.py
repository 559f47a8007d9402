"""Batched augmentations in torch (CPU or GPU): the views TTT, training and the methods draw.

Images are float NCHW in [0, 1]. Every function takes an explicit torch.Generator so draws are reproducible.
"""
from __future__ import annotations

import math

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
    """One SimCLR view of every image (its CIFAR recipe, as torchvision composes it): RandomResizedCrop(scale
    0.2-1, ratio 3/4-4/3, 10 tries then the whole image), horizontal flip p 0.5, ColorJitter(0.4, 0.4, 0.4, 0.1)
    with p 0.8 (the four ops in a random order per image, each clamped to [0, 1], hue shifted in HSV), greyscale
    p 0.2. Differs from torchvision only in skipping the uint8 rounding between PIL ops."""
    n, c, h, w = x.shape
    dev = x.device
    u = lambda *s: torch.rand(*s, generator=gen, device=gen.device).to(dev)  # noqa: E731
    tries = 10
    area = (scale[0] + (scale[1] - scale[0]) * u(n, tries)) * (h * w)
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    ratio = torch.exp(lo + (hi - lo) * u(n, tries))
    cw = torch.sqrt(area * ratio).round()
    ch = torch.sqrt(area / ratio).round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1, device=dev))
    pick = first.clamp_min(0)[:, None]
    cw = torch.where(first >= 0, cw.gather(1, pick)[:, 0], torch.full((n,), float(w), device=dev))
    ch = torch.where(first >= 0, ch.gather(1, pick)[:, 0], torch.full((n,), float(h), device=dev))
    # torchvision: i = randint(0, h - ch + 1), j = randint(0, w - cw + 1)
    top = (u(n) * (h - ch + 1)).floor().clamp(max=h - ch)
    left = (u(n) * (w - cw + 1)).floor().clamp(max=w - cw)
    sign = torch.where(u(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = cw / w * sign                   # a flip mirrors the crop about its own centre
    theta[:, 0, 2] = -1 + (2 * left + cw) / w
    theta[:, 1, 1] = ch / h
    theta[:, 1, 2] = -1 + (2 * top + ch) / h
    grid = F.affine_grid(theta, (n, c, h, w), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    apply = u(n) < 0.8
    factors = torch.stack([1 + (u(n) * 0.8 - 0.4), 1 + (u(n) * 0.8 - 0.4), 1 + (u(n) * 0.8 - 0.4),
                           u(n) * 0.2 - 0.1], 1)
    order = torch.argsort(u(n, 4), dim=1)            # a random permutation of the 4 ops per image
    jittered = v.clone()
    ops = (_brightness, _contrast, _saturation, _hue_shift)
    for slot in range(4):                            # each op on just the images that drew it in this slot
        for k, op in enumerate(ops):
            sel = (apply & (order[:, slot] == k)).nonzero().flatten()
            if len(sel):
                jittered[sel] = op(jittered[sel], factors[sel, k])
    v = jittered
    gray = (u(n) < 0.2)[:, None, None, None]
    return torch.where(gray, _gray(v).expand_as(v), v)


def _gray(v):
    return (0.2989 * v[:, 0:1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3])


def _brightness(v, f):
    return (v * f[:, None, None, None]).clamp(0, 1)


def _contrast(v, f):
    m = _gray(v).mean(dim=(1, 2, 3), keepdim=True)
    return ((v - m) * f[:, None, None, None] + m).clamp(0, 1)


def _saturation(v, f):
    g = _gray(v)
    return ((v - g) * f[:, None, None, None] + g).clamp(0, 1)


def _hue_shift(v, shift):
    """torchvision's adjust_hue: to HSV, h = (h + shift) mod 1, back to RGB."""
    r, g, b = v[:, 0], v[:, 1], v[:, 2]
    maxc, _ = v.max(1)
    minc, _ = v.min(1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    hue = (hue + shift[:, None, None]) % 1.0
    i = torch.floor(hue * 6.0)
    f = hue * 6.0 - i
    p, q, t = maxc * (1 - sat), maxc * (1 - sat * f), maxc * (1 - sat * (1 - f))
    i = i.long() % 6
    vals = torch.stack([maxc, q, p, p, t, maxc,      # r for i = 0..5
                        t, maxc, maxc, q, p, p,      # g
                        p, p, t, maxc, maxc, q], 1).view(len(v), 3, 6, *maxc.shape[1:])
    return vals.gather(2, i[:, None, None].expand(-1, 3, 1, -1, -1)).squeeze(2)


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
