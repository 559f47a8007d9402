"""Slow per-image versions written the way the original make_cifar_c.py works (numpy/scipy/Pillow per image,
glass blur's Python pixel loop, scipy zoom per factor). Used as the baseline of benchmarks/corruptions.py and
as independent checks in the tests. CIFAR parameters only; input and output are one H×W×3 uint8 image."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from tttgui.corruptions import blur, digital, frost, geometry, noise, weather


def _out(x):
    return np.uint8(np.clip(x, 0, 1) * 255)


def _gauss(x, sigma, mode="nearest", truncate=4.0):
    return ndimage.gaussian_filter(x, sigma=(sigma, sigma, 0), mode=mode, truncate=truncate)


def gaussian_noise(x, s, rs):
    x = np.array(x) / 255.
    return _out(x + rs.normal(size=x.shape, scale=noise.GAUSSIAN[0][s - 1]))


def shot_noise(x, s, rs):
    c = noise.SHOT[0][s - 1]
    return _out(rs.poisson(np.array(x) / 255. * c) / c)


def impulse_noise(x, s, rs):
    a = noise.IMPULSE[0][s - 1]
    x = np.array(x) / 255.
    flipped = rs.choice([True, False], size=x.shape, p=[a, 1 - a])
    salted = rs.choice([True, False], size=x.shape, p=[0.5, 0.5])
    x[flipped & salted] = 1
    x[flipped & ~salted] = 0
    return _out(x)


def speckle_noise(x, s, rs):
    x = np.array(x) / 255.
    return _out(x + x * rs.normal(size=x.shape, scale=noise.SPECKLE[0][s - 1]))


def defocus_blur(x, s, rs=None):
    k = blur.defocus_kernel(*blur.DEFOCUS[0][s - 1]).astype(np.float64)
    x = np.array(x) / 255.
    return _out(np.stack([ndimage.correlate(x[..., d], k, mode="mirror") for d in range(3)], axis=-1))


def glass_blur(x, s, rs, draws=None):
    sigma, delta, iterations = blur.GLASS[0][s - 1]
    x = np.uint8(_gauss(np.array(x) / 255., sigma) * 255)
    for p in range(iterations):
        for h in range(32 - delta, delta, -1):
            for w in range(32 - delta, delta, -1):
                if draws is None:
                    dx, dy = rs.randint(-delta, delta, size=(2,))
                else:
                    dx, dy = draws[p, 32 - delta - h, 32 - delta - w]
                hp, wp = h + dy, w + dx
                x[h, w], x[hp, wp] = x[hp, wp], x[h, w]
    return _out(_gauss(x / 255., sigma))


def motion_blur(x, s, rs, angle=None):
    radius, sigma = blur.MOTION[0][s - 1]
    angle = rs.uniform(-45, 45) if angle is None else angle
    return _motion(np.asarray(x), radius, sigma, angle)


def _motion(img, radius, sigma, angle):
    taps = blur.motion_taps(radius, sigma, angle)
    p = len(taps)
    pad = [(p, p), (p, p)] + [(0, 0)] * (img.ndim - 2)
    xp = np.pad(img.astype(np.float64), pad, mode="edge")
    h, w = img.shape[:2]
    out = sum(k * xp[p + dy:p + dy + h, p + dx:p + dx + w] for k, dy, dx in taps)
    return np.floor(out + 1e-3).clip(0, 255).astype(np.uint8)


def clipped_zoom(img, z):
    h = img.shape[0]
    ch = int(np.ceil(h / z))
    top = (h - ch) // 2
    img = ndimage.zoom(img[top:top + ch, top:top + ch], (z, z, 1), order=1)
    trim = (img.shape[0] - h) // 2
    return img[trim:trim + h, trim:trim + h]


def zoom_blur(x, s, rs=None):
    zooms = blur.zoom_factors(s, False)
    x = (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for z in zooms:
        out += clipped_zoom(x, z)
    return _out((x + out) / (len(zooms) + 1))


def gaussian_blur(x, s, rs=None):
    return _out(_gauss(np.array(x) / 255., blur.GAUSSIAN_BLUR[0][s - 1]))


def snow(x, s, rs):
    mu, sd, zoom, thr, radius, sigma, blend = weather.SNOW[s - 1]
    x = np.array(x, dtype=np.float32) / 255.
    layer = rs.normal(size=x.shape[:2], loc=mu, scale=sd)
    layer = clipped_zoom(layer[..., None], zoom)
    layer[layer < thr] = 0
    gray = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    layer = _motion(gray, radius, sigma, rs.uniform(-135, -45)) / 255.
    layer = layer[..., None]
    g = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, g * 1.5 + 0.5)
    return _out(x + layer + np.rot90(layer, k=2))


def frost_(x, s, rs, frost_dir=None):
    a, b = frost.FROST[0][s - 1]
    tex = frost.textures(frost_dir, True)[rs.randint(5)]
    top, left = rs.randint(0, tex.shape[0] - 32), rs.randint(0, tex.shape[1] - 32)
    crop = tex[top:top + 32, left:left + 32]
    return np.uint8(np.clip(a * np.array(x) + b * crop, 0, 255))


def fog(x, s, rs):
    a, decay = weather.FOG[0][s - 1]
    x = np.array(x) / 255.
    top = x.max()
    x = x + a * weather.plasma_fractal(rs, 1, 32, decay)[0][..., None]
    return _out(x * top / (top + a))


def _rgb2hsv(rgb):  # skimage.color.rgb2hsv
    v = rgb.max(-1)
    delta = rgb.ptp(-1) if hasattr(rgb, "ptp") else np.ptp(rgb, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(delta == 0, 0, delta / v)
        r, g, b = (rgb[..., i] for i in range(3))
        h = np.where(r == v, (g - b) / delta, np.where(g == v, 2 + (b - r) / delta, 4 + (r - g) / delta))
    h = np.where(delta == 0, 0, (h / 6) % 1)
    return np.stack([h, s, v], -1)


def _hsv2rgb(hsv):  # skimage.color.hsv2rgb
    h, s, v = (hsv[..., i] for i in range(3))
    hi = np.floor(h * 6)
    f = h * 6 - hi
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    hi = np.stack([hi, hi, hi], -1).astype(np.uint8) % 6
    choices = [np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    return np.choose(hi, choices)


def brightness(x, s, rs=None):
    hsv = _rgb2hsv(np.array(x) / 255.)
    hsv[..., 2] = np.clip(hsv[..., 2] + digital.BRIGHTNESS[0][s - 1], 0, 1)
    return _out(_hsv2rgb(hsv))


def saturate(x, s, rs=None):
    a, b = digital.SATURATE[s - 1]
    hsv = _rgb2hsv(np.array(x) / 255.)
    hsv[..., 1] = np.clip(hsv[..., 1] * a + b, 0, 1)
    return _out(_hsv2rgb(hsv))


def contrast(x, s, rs=None):
    c = digital.CONTRAST[0][s - 1]
    x = np.array(x) / 255.
    m = x.mean(axis=(0, 1), keepdims=True)
    return _out((x - m) * c + m)


def pixelate(x, s, rs=None):
    c = digital.PIXELATE[0][s - 1]
    im = Image.fromarray(np.asarray(x)).resize((int(32 * c), int(32 * c)), Image.BOX)
    return np.asarray(im.resize((32, 32), Image.BOX))


def jpeg_compression(x, s, rs=None):
    buf = io.BytesIO()
    Image.fromarray(np.asarray(x)).save(buf, "JPEG", quality=digital.JPEG[0][s - 1])
    return np.asarray(Image.open(buf))


def elastic_transform(x, s, rs):
    alpha, sigma, jitter = (32 * v for v in geometry.ELASTIC[s - 1])
    x = np.array(x, dtype=np.float32) / 255.
    src = geometry.affine_points(32, 32)
    dst = src + rs.uniform(-jitter, jitter, size=src.shape).astype(np.float32)
    m = geometry.affine_matrices(src, dst[None])[0]
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    # scipy works in (row, col): swap the (x, y) roles of the cv2 matrix
    mat = np.array([[inv[1, 1], inv[1, 0]], [inv[0, 1], inv[0, 0]]])
    off = np.array([inv[1, 2], inv[0, 2]])
    x = np.stack([ndimage.affine_transform(x[..., d], mat, off, order=1, mode="mirror") for d in range(3)], -1)
    dx = (_field(rs, sigma) * alpha).astype(np.float32)
    dy = (_field(rs, sigma) * alpha).astype(np.float32)
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    coords = [rows + dy, cols + dx]
    x = np.stack([ndimage.map_coordinates(x[..., d], coords, order=1, mode="reflect") for d in range(3)], -1)
    return _out(x)


def _field(rs, sigma):
    u = rs.uniform(-1, 1, size=(32, 32))
    return ndimage.gaussian_filter(u, sigma, mode="reflect", truncate=3) if sigma > 0 else u


def spatter(x, s, rs):
    gen = np.random.default_rng(rs.randint(2**31))
    m = weather.spatter_mask(gen, 1, 32, 32, s)[0][..., None].astype(np.float64)
    x = np.array(x, dtype=np.float32) / 255.
    if weather.SPATTER[s - 1][5] == 0:
        return _out(x + m * np.array(weather.WATER) / 255.)
    return _out(x * (1 - m) + m * np.array(weather.MUD) / 255.)


FUNCTIONS = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur, "glass_blur": glass_blur, "motion_blur": motion_blur, "zoom_blur": zoom_blur,
    "snow": snow, "frost": frost_, "fog": fog, "brightness": brightness, "contrast": contrast,
    "elastic_transform": elastic_transform, "pixelate": pixelate, "jpeg_compression": jpeg_compression,
    "speckle_noise": speckle_noise, "gaussian_blur": gaussian_blur, "spatter": spatter, "saturate": saturate,
}


def corrupt_one(x: np.ndarray, name: str, severity: int, rs: np.random.RandomState) -> np.ndarray:
    return FUNCTIONS[name](x, severity, rs)
