"""Digital: brightness, contrast, saturate (closed forms of the HSV round trips), pixelate (Pillow's BOX
resampling as integer arithmetic), jpeg_compression (Pillow itself)."""
from __future__ import annotations

import io
from functools import lru_cache
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from tttgui.corruptions.context import Context, pick
from tttgui.corruptions.ops import floor_u8, to_unit

BRIGHTNESS = ((0.05, 0.1, 0.15, 0.2, 0.3), (0.1, 0.2, 0.3, 0.4, 0.5))
CONTRAST = ((0.75, 0.5, 0.4, 0.3, 0.15), (0.4, 0.3, 0.2, 0.1, 0.05))
SATURATE = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))  # CIFAR values, used for every size
PIXELATE = ((0.95, 0.9, 0.85, 0.75, 0.65), (0.6, 0.5, 0.4, 0.3, 0.25))
JPEG = ((80, 65, 58, 50, 40), (25, 18, 15, 10, 7))


def brightness(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """HSV V += c (clipped): RGB * min(V+c, 1) / V; black becomes (c, c, c)."""
    c = pick(*BRIGHTNESS, severity, ctx)
    xf = to_unit(x)
    v = xf.amax(dim=1, keepdim=True)
    v_new = (v + c).clamp(max=1.0)
    scaled = xf * (v_new / torch.where(v > 0, v, torch.ones_like(v)))
    return floor_u8(torch.where(v > 0, scaled, v_new.expand_as(xf)))


def contrast(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    c = pick(*CONTRAST, severity, ctx)
    xf = to_unit(x)
    mean = xf.mean(dim=(2, 3), keepdim=True)
    return floor_u8((xf - mean) * c + mean)


def saturate(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """HSV S = clip(a*S + b): RGB' = V - (V - RGB) * S'/S; gray pixels have hue 0, so they turn reddish."""
    a, b = SATURATE[severity - 1]
    xf = to_unit(x)
    v = xf.amax(dim=1, keepdim=True)
    delta = v - xf.amin(dim=1, keepdim=True)
    s = torch.where(delta > 0, delta / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    s_new = (a * s + b).clamp(0.0, 1.0)
    colored = v - (v - xf) * (s_new / torch.where(s > 0, s, torch.ones_like(s)))
    low = v * (1 - s_new)
    gray = torch.cat([v, low, low], dim=1)
    return floor_u8(torch.where(s > 0, colored, gray))


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
    """Horizontal then vertical pass, each rounded to 8 bits as Pillow does (float64 holds the sums exactly)."""
    n, c, h, w = x.shape
    dev = x.device
    ww = torch.as_tensor(pil_box_weights(w, w_out), dtype=torch.float64, device=dev)
    wh = torch.as_tensor(pil_box_weights(h, h_out), dtype=torch.float64, device=dev)
    half, one = float(1 << 21), float(1 << 22)
    y = torch.floor((x.double() @ ww.T + half) / one).clamp(0, 255)
    y = torch.floor((wh @ y + half) / one).clamp(0, 255)
    return y.to(torch.uint8)


def pixelate(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    c = pick(*PIXELATE, severity, ctx)
    h, w = x.shape[-2:]
    small = pil_box_resize(x, int(h * c), int(w * c))
    return pil_box_resize(small, h, w)


# ---- jpeg ----------------------------------------------------------------------------------------------------
def _jpeg_one(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def jpeg_compression(x: torch.Tensor, severity: int, ctx: Context) -> torch.Tensor:
    """Pillow save/open at the given quality (4:2:0, standard tables). Pillow releases the GIL: use threads."""
    q = pick(*JPEG, severity, ctx)
    imgs = x.permute(0, 2, 3, 1).cpu().numpy()
    if len(imgs) < 64:
        out = [_jpeg_one(im, q) for im in imgs]
    else:
        with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
            out = list(pool.map(lambda im: _jpeg_one(im, q), imgs, chunksize=256))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device)
