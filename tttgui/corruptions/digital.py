"""Digital: brightness, contrast, saturate (closed forms of the HSV round trips), pixelate (Pillow's BOX
resampling as integer arithmetic), jpeg_compression (Pillow itself)."""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from tttgui.corruptions.context import Context, pick
from tttgui.corruptions.ops import floor_u8, floor_u8_255, to_unit

BRIGHTNESS = ((0.05, 0.1, 0.15, 0.2, 0.3), (0.1, 0.2, 0.3, 0.4, 0.5))
CONTRAST = ((0.75, 0.5, 0.4, 0.3, 0.15), (0.4, 0.3, 0.2, 0.1, 0.05))
SATURATE = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))  # CIFAR values, used for every size
PIXELATE = ((0.95, 0.9, 0.85, 0.75, 0.65), (0.6, 0.5, 0.4, 0.3, 0.25))
JPEG = ((80, 65, 58, 50, 40), (25, 18, 15, 10, 7))


def brightness(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """HSV V += c (clipped): RGB * min(V+c, 1) / V; black becomes (c, c, c). A value depends only on
    (V, itself): a 256×256 lookup table computed in float64 gives the closed form's exact bytes."""
    c = pick(*BRIGHTNESS, severity, ctx)
    lut = torch.as_tensor(brightness_lut(float(c)), device=x.device)
    v = x.amax(dim=1, keepdim=True).long()
    return lut[(v << 8) | x.long()]


@lru_cache(maxsize=16)
def brightness_lut(c: float) -> np.ndarray:
    v = torch.arange(256, dtype=torch.float64).view(256, 1) / 255.0
    xf = torch.arange(256, dtype=torch.float64).view(1, 256) / 255.0
    v_new = (v + c).clamp(max=1.0)
    scaled = xf * (v_new / torch.where(v > 0, v, torch.ones_like(v)))
    return floor_u8(torch.where(v > 0, scaled, v_new.expand(256, 256))).numpy().ravel()


def contrast(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """(x - m)*c + m = x*c + m*(1-c): float32 with the per-image mean in float64."""
    c = pick(*CONTRAST, severity, ctx)
    mean = x.sum(dim=(2, 3), keepdim=True, dtype=torch.float64) / (x.shape[2] * x.shape[3] * 255.0)
    y = x.float().mul_(c / 255.0).add_((mean * (1 - c)).float())
    return floor_u8(y)


def saturate(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """HSV S = clip(a*S + b): RGB' = V - (V - RGB) * S'/S; gray pixels have hue 0, so they turn reddish.
    S'/S depends only on (V, min): a 256×256 table, with the closed form's float64 operations."""
    a, b = SATURATE[severity - 1]
    ratio, low = (torch.as_tensor(t, device=x.device) for t in saturate_luts(float(a), float(b)))
    v = x.amax(dim=1, keepdim=True)
    key = (v.long() << 8) | x.amin(dim=1, keepdim=True).long()
    vf = to_unit(v)
    colored = (vf - (vf - to_unit(x)) * ratio[key]).mul_(255.0)
    gray = torch.cat([v, low[v.long()].expand(-1, 2, -1, -1)], dim=1)
    return torch.where(key.eq(v.long() * 257), gray, floor_u8_255(colored))


@lru_cache(maxsize=16)
def saturate_luts(a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """S'/S for every (V, min), and the floored V*(1-S') of gray pixels (S = 0) for every V."""
    v = np.arange(256, dtype=np.float64)[:, None] / 255.0
    mn = np.arange(256, dtype=np.float64)[None, :] / 255.0
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(v > mn, (v - mn) / np.where(v > 0, v, 1.0), 0.0)
        ratio = np.where(s > 0, np.clip(a * s + b, 0.0, 1.0) / s, 0.0)
    low = (np.clip(v[:, 0] * (1 - np.clip(b, 0.0, 1.0)), 0, 1) * 255).astype(np.uint8)
    return ratio.ravel(), low


# ---- pixelate ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def pil_box_weights(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's BOX resampling coefficients (Resample.c precompute_coeffs + 8-bit fixed point), n_out×n_in ints."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    out = np.zeros((n_out, n_in), np.int64)
    for xx in range(n_out):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n_in) - xmin
        t = (np.arange(xmax) + xmin - center + 0.5) / filterscale
        w = ((t > -0.5) & (t <= 0.5)).astype(np.float64)
        if w.sum() > 0:
            w /= w.sum()
        out[xx, xmin:xmin + xmax] = np.floor(0.5 + w * (1 << 22)).astype(np.int64)
    return out


def pil_box_resize(x: torch.Tensor, h_out: int, w_out: int) -> torch.Tensor:
    """Horizontal then vertical pass, each rounded to 8 bits as Pillow does (float64 holds the sums exactly).
    A pass whose every output takes one whole input pixel (upscaling) is an exact index gather."""
    y = _box_pass(x, pil_box_weights(x.shape[-1], w_out))
    y = _box_pass(y.transpose(-1, -2), pil_box_weights(x.shape[-2], h_out)).transpose(-1, -2)
    return y.to(torch.uint8).contiguous()


def _box_pass(x: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
    """One Pillow pass along the last axis (values 0..255 as uint8 or integral float64)."""
    one = 1 << 22
    if ((weights == one).sum(axis=1) == 1).all():
        return x.index_select(-1, torch.as_tensor(weights.argmax(axis=1), device=x.device))
    w = torch.as_tensor(weights.T, dtype=torch.float64, device=x.device)
    # (sum + 2^21) >> 22, in place; scaling by a power of two is exact
    return (x.double() @ w).add_(float(one >> 1)).mul_(1.0 / one).floor_().clamp_(0, 255)


def pixelate(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    c = pick(*PIXELATE, severity, ctx)
    h, w = x.shape[-2:]
    small = pil_box_resize(x, int(h * c), int(w * c))
    return pil_box_resize(small, h, w)


# ---- jpeg ----------------------------------------------------------------------------------------------------
def _jpeg_one(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    # the JPEG decoder that Image.open would pick (same tile arguments), without parsing the file in Python
    im = Image.frombytes("RGB", (img.shape[1], img.shape[0]), buf.getvalue(), "jpeg", "RGB", "")
    return np.asarray(im)


def jpeg_compression(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """Pillow save/open at the given quality (4:2:0, standard tables); chunks already run in parallel."""
    q = pick(*JPEG, severity, ctx)
    imgs = x.permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([_jpeg_one(im, q) for im in imgs])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device)
