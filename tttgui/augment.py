"""Batched augmentations in torch (CPU or GPU): the views TTT, training and the methods draw.

Images are float NCHW in [0, 1]. Every function takes an explicit torch.Generator so draws are reproducible.
Random numbers are drawn on the generator's device (the CPU) in a fixed order, so the views are the same on
every device, and crop_flip and simclr_views move their draws to the images' device in one copy.
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
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device)
    flip = torch.rand(n, generator=gen, device=gen.device) < 0.5
    oy, ox, flip = torch.stack([oy, ox, flip.long()]).to(dev)      # one copy to the device
    flip = flip.bool()
    rows = (oy[:, None] + torch.arange(h, device=dev)[None, :])                       # n×h
    cols = ox[:, None] + torch.arange(w, device=dev)[None, :]                         # n×w
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_r = rows[:, None, :, None].expand(n, c, h, w + 2 * pad)
    out = padded.gather(2, idx_r)
    idx_c = cols[:, None, None, :].expand(n, c, h, w)
    return out.gather(3, idx_c)


def rotate(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Rotate image i by labels[i] * 90 degrees counter-clockwise (the TTT rotation task)."""
    if x.shape[2] == x.shape[3]:     # square: select among the four rotations, no host round trip per angle
        out = x
        for k in range(1, 4):
            out = torch.where((labels == k)[:, None, None, None], torch.rot90(x, k, dims=(2, 3)), out)
        return out
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
    u = lambda *s: torch.rand(*s, generator=gen, device=gen.device)  # noqa: E731  (on the CPU; moved once)
    tries = 10
    area = (scale[0] + (scale[1] - scale[0]) * u(n, tries)) * (h * w)
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    ratio = torch.exp(lo + (hi - lo) * u(n, tries))
    cw = torch.sqrt(area * ratio).round()
    ch = torch.sqrt(area / ratio).round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp_min(0)[:, None]
    cw = torch.where(first >= 0, cw.gather(1, pick)[:, 0], torch.full((n,), float(w)))
    ch = torch.where(first >= 0, ch.gather(1, pick)[:, 0], torch.full((n,), float(h)))
    # torchvision: i = randint(0, h - ch + 1), j = randint(0, w - cw + 1)
    top = (u(n) * (h - ch + 1)).floor().clamp(max=h - ch)
    left = (u(n) * (w - cw + 1)).floor().clamp(max=w - cw)
    sign = torch.where(u(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cw / w * sign                   # a flip mirrors the crop about its own centre
    theta[:, 0, 2] = -1 + (2 * left + cw) / w
    theta[:, 1, 1] = ch / h
    theta[:, 1, 2] = -1 + (2 * top + ch) / h
    apply = u(n) < 0.8
    factors = torch.stack([1 + (u(n) * 0.8 - 0.4), 1 + (u(n) * 0.8 - 0.4), 1 + (u(n) * 0.8 - 0.4),
                           u(n) * 0.2 - 0.1], 1)
    order = torch.argsort(u(n, 4), dim=1)            # a random permutation of the 4 ops per image
    gray = u(n) < 0.2
    packed = torch.cat([theta.flatten(1), factors, apply[:, None].float(), gray[:, None].float()], 1).to(dev)
    theta, factors = packed[:, :6].view(n, 2, 3), packed[:, 6:10]
    grid = F.affine_grid(theta, (n, c, h, w), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    jittered = v.clone()
    ops = (_brightness, _contrast, _saturation, _hue_shift)
    for slot in range(4):                            # each op on just the images that drew it in this slot
        for k, op in enumerate(ops):
            # selected on the CPU, where the draws are: no device-to-host copy per op
            sel = (apply & (order[:, slot] == k)).nonzero().flatten()
            if len(sel):
                sel = sel.to(dev)
                jittered[sel] = op(jittered[sel], factors[sel, k])
    v = jittered
    gray = packed[:, 11].bool()[:, None, None, None]
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
    # contiguous NCHW: a channels-last tensor reaching GroupNorm's backward crashed torch 2.13
    return images_u8.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


# -- AugMix (Hendrycks et al. 2020) as MEMO draws it for CIFAR-10 ---------------------------------------------
# MEMO's cifar-10-exps/utils/third_party.py on PIL uint8 images: level ~ U(0.1, severity); rotate int(level*3)
# degrees, shear level*0.03, translate int(level*32/30) px (random sign each), solarize threshold
# 256 - int(level*25.6), posterize to 4 - int(level*0.4) bits; geometric ops bilinear with fillcolor=128, which
# PIL reads for an RGB image as packed RGB: (128, 0, 0). Every op returns uint8 as PIL does (it truncates).
AUGMIX_OPS = ("autocontrast", "equalize", "rotate", "solarize", "shear_x", "shear_y", "translate_x",
              "translate_y", "posterize")
AUGMIX_FILL = (128.0, 0.0, 0.0)


def augmix_views(x: torch.Tensor, gen: torch.Generator, severity: float = 1.0, width: int = 3,
                 max_depth: int = 3) -> torch.Tensor:
    """One AugMix view of every image in x (float NCHW on the uint8 grid k/255): `width` chains of 1..max_depth
    random ops, mixed with Dirichlet(1) weights, then m x + (1 - m) mix with m ~ Beta(1, 1), as MEMO's
    _augmix_aug. Batched: each (chain, depth) slot applies every op to the views that drew it."""
    n = len(x)
    dev = x.device
    u = lambda *s: torch.rand(*s, generator=gen, device=gen.device)  # noqa: E731  (on the CPU; moved once)
    # Every draw on the generator's device in MEMO's order, the views each (chain, depth, op) slot selects
    # computed there too, and all of it packed into one tensor moved to the images' device in one copy: no
    # transfer or device-to-host sync per slot.
    w = -torch.log(u(n, width).clamp_min(1e-12))
    w = w / w.sum(1, keepdim=True)                                    # Dirichlet(1, ..., 1)
    m = u(n)                                                          # Beta(1, 1)
    levels, signs, picks, sizes = [], [], [], []
    for c in range(width):
        depth = torch.randint(1, max_depth + 1, (n,), generator=gen, device=gen.device)
        for d in range(max_depth):
            ops = torch.randint(0, len(AUGMIX_OPS), (n,), generator=gen, device=gen.device)
            levels.append(0.1 + (severity - 0.1) * u(n))
            signs.append(torch.where(u(n) < 0.5, -1.0, 1.0))
            for k in range(len(AUGMIX_OPS)):
                sel = ((depth > d) & (ops == k)).nonzero().flatten()
                picks.append(sel)
                sizes.append(len(sel))
    packed = torch.cat([w.flatten().double(), m.double(), torch.cat(levels).double(), torch.cat(signs).double(),
                        torch.cat(picks).double()]).to(dev)        # indices < 2**53: exact in float64
    w, m, level, sign, sel_all = packed.split([n * width, n, n * width * max_depth, n * width * max_depth,
                                              sum(sizes)])
    w, m = w.float().reshape(n, width), m.float()
    level, sign = level.float().reshape(-1, n), sign.float().reshape(-1, n)
    sel_all = sel_all.long().split(sizes)
    q = (x * 255).round().clamp(0, 255)                               # the PIL image: values 0..255
    mix = torch.zeros_like(x)
    slot = 0
    for c in range(width):
        chain = q.clone()
        for d in range(max_depth):
            row = c * max_depth + d
            for k, name in enumerate(AUGMIX_OPS):
                sel = sel_all[slot * len(AUGMIX_OPS) + k]
                if sizes[slot * len(AUGMIX_OPS) + k]:
                    chain[sel] = _augmix_op(name, chain[sel], level[row][sel], sign[row][sel])
            slot += 1
        mix = mix + w[:, c, None, None, None] * chain / 255
    m = m[:, None, None, None]
    return (m * q / 255 + (1 - m) * mix).clamp(0, 1)


def _augmix_op(name: str, q: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """One PIL op on integer-valued float images (0..255), returning integer values as PIL does. Parameters
    are computed in float64 in MEMO's order (int_parameter: int(level * maxval / 10))."""
    n, _, h, w = q.shape
    level, sign = level.double(), sign.double()
    if name == "autocontrast":                   # ImageOps.autocontrast: lut int(i * scale + offset) per channel
        lo = q.amin(dim=(2, 3), keepdim=True).double()
        hi = q.amax(dim=(2, 3), keepdim=True).double()
        scale = 255.0 / torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        out = (q.double() * scale - lo * scale).floor().clamp(0, 255).to(q.dtype)
        return torch.where(hi > lo, out, q)
    if name == "equalize":
        return _equalize(q / 255) * 255
    if name == "solarize":
        t = (256 - (level * 256 / 10).floor())[:, None, None, None].to(q.dtype)
        return torch.where(q >= t, 255 - q, q)
    if name == "posterize":
        bits = (4 - (level * 4 / 10).floor()).to(torch.int64)
        mask = (255 << (8 - bits))[:, None, None, None] & 255
        return (q.to(torch.int64) & mask).to(q.dtype)
    mat = torch.zeros(n, 6, dtype=torch.float64, device=q.device)
    mat[:, 0] = mat[:, 4] = 1.0
    if name == "rotate":                         # Image.rotate: inverse map about the centre (w/2, h/2)
        ang = -torch.deg2rad((level * 30 / 10).floor() * sign)
        cos, sin = torch.cos(ang), torch.sin(ang)
        mat[:, 0], mat[:, 1], mat[:, 3], mat[:, 4] = cos, sin, -sin, cos
        mat[:, 2] = -cos * w / 2 - sin * h / 2 + w / 2
        mat[:, 5] = sin * w / 2 - cos * h / 2 + h / 2
    elif name in ("shear_x", "shear_y"):
        mat[:, 1 if name == "shear_x" else 3] = level * 0.3 / 10 * sign
    else:
        size = w if name == "translate_x" else h
        mat[:, 2 if name == "translate_x" else 5] = (level * (size / 3) / 10).floor() * sign
    return pil_affine(q, mat, AUGMIX_FILL)


def pil_affine(q: torch.Tensor, mat: torch.Tensor, fill) -> torch.Tensor:
    """PIL's Image.transform(AFFINE, (a, b, c, d, e, f), BILINEAR, fillcolor) on integer-valued float images:
    output pixel centre (x, y) samples input (a x + b y + c, d x + e y + f); outside the image: `fill`; inside:
    bilinear with edge pixels repeated, truncated to an integer."""
    n, ch, h, w = q.shape
    dev = q.device
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float64) + 0.5,
                            torch.arange(w, device=dev, dtype=torch.float64) + 0.5, indexing="ij")
    a, b, c, d, e, f = (mat[:, i, None, None] for i in range(6))
    xin, yin = a * xs + b * ys + c, d * xs + e * ys + f                 # n x h x w
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    xin, yin = xin - 0.5, yin - 0.5
    x0, y0 = xin.floor(), yin.floor()
    dx, dy = (xin - x0)[:, None], (yin - y0)[:, None]
    flat = q.double().flatten(2)

    def at(yy, xx):
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long().flatten(1)
        return flat.gather(2, idx[:, None].expand(n, ch, -1)).view(n, ch, h, w)

    top = at(y0, x0) + (at(y0, x0 + 1) - at(y0, x0)) * dx
    bottom = at(y0 + 1, x0) + (at(y0 + 1, x0 + 1) - at(y0 + 1, x0)) * dx
    v = (top + (bottom - top) * dy).floor().clamp(0, 255)
    # made on the device from scalars: torch.tensor(list, device=...) would be a host copy per op
    fill = torch.stack([torch.full((), float(f), dtype=torch.float64, device=dev) for f in fill])[None, :, None, None]
    return torch.where(inside[:, None], v, fill).to(q.dtype)


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
