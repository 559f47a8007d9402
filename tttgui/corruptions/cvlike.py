"""The few OpenCV operations spatter's water mode uses, re-done in numpy on batches (N×H×W uint8).

They follow OpenCV's definitions (Canny with L1 gradient and its non-maximum rules, the 5×5 chamfer distance
in 16-bit fixed point, equalizeHist's LUT, saturating 8-bit filters) so that the mask matches cv2's.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from tttgui.corruptions.ops import pad_index


def _pad(a: np.ndarray, r: int, mode: str) -> np.ndarray:
    h, w = a.shape[-2:]
    a = np.take(a, pad_index(h, r, r, mode), axis=-2)
    return np.take(a, pad_index(w, r, r, mode), axis=-1)


def correlate3x3(a: np.ndarray, kernel: np.ndarray, mode: str) -> np.ndarray:
    h, w = a.shape[-2:]
    p = _pad(a.astype(np.float64), 1, mode)
    out = np.zeros(a.shape, np.float64)
    for i in range(3):
        for j in range(3):
            if kernel[i, j]:
                out += kernel[i, j] * p[..., i:i + h, j:j + w]
    return out


def canny(img: np.ndarray, low: int, high: int) -> np.ndarray:
    """cv2.Canny(img, low, high) (aperture 3, L1 gradient) for a batch; returns bool edges."""
    sob = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    dx = correlate3x3(img, sob, "nearest").astype(np.int64)
    dy = correlate3x3(img, sob.T, "nearest").astype(np.int64)
    mag = np.abs(dx) + np.abs(dy)
    n, h, w = img.shape
    m = np.zeros((n, h + 2, w + 2), np.int64)  # magnitude outside the image counts as 0
    m[:, 1:-1, 1:-1] = mag

    def nb(di, dj):
        return m[:, 1 + di:1 + di + h, 1 + dj:1 + dj + w]

    ax, ay = np.abs(dx), np.abs(dy) << 15
    tg22x = ax * int(0.4142135623730950488 * (1 << 15) + 0.5)
    tg67x = tg22x + (ax << 16)
    horiz = ay < tg22x
    vert = ~horiz & (ay > tg67x)
    diag = ~horiz & ~vert
    s = np.where((dx ^ dy) < 0, -1, 1)
    diag_ok = np.where(s < 0, (mag > nb(-1, 1)) & (mag > nb(1, -1)), (mag > nb(-1, -1)) & (mag > nb(1, 1)))
    peak = ((horiz & (mag > nb(0, -1)) & (mag >= nb(0, 1)))
            | (vert & (mag > nb(-1, 0)) & (mag >= nb(1, 0)))
            | (diag & diag_ok))
    cand = peak & (mag > low)
    strong = cand & (mag > high)
    # hysteresis: keep candidate components (8-connected, per image) that hold a strong pixel
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = True
    labels, count = ndimage.label(cand, structure=structure)
    keep = np.zeros(count + 1, bool)
    keep[np.unique(labels[strong])] = True
    keep[0] = False
    return keep[labels]


# cv2.distanceTransform(DIST_L2, 5): chamfer weights 1, 1.4, 2.1969 as 16-bit fixed point
_CHAMFER = [(0, 1, 65536), (1, 0, 65536), (1, 1, 91750), (1, -1, 91750),
            (1, 2, 143976), (2, 1, 143976), (1, -2, 143976), (2, -1, 143976)]


def distance_to_zero(nonzero: np.ndarray) -> np.ndarray:
    """Chamfer-5×5 distance of every pixel to the nearest zero pixel (float32; inf where there is none)."""
    big = np.int64(1) << 40
    d = np.where(nonzero, big, 0).astype(np.int64)
    h, w = d.shape[-2:]
    while True:
        prev = d
        p = np.full((d.shape[0], h + 4, w + 4), big, np.int64)
        p[:, 2:-2, 2:-2] = d
        best = d.copy()
        for di, dj, cost in _CHAMFER:
            for a, b in ((di, dj), (-di, -dj)):
                np.minimum(best, p[:, 2 + a:2 + a + h, 2 + b:2 + b + w] + cost, out=best)
        d = best
        if np.array_equal(d, prev):
            break
    out = (d.astype(np.float64) / 65536.0).astype(np.float32)
    out[d >= big] = np.inf
    return out


def blur3x3(a: np.ndarray) -> np.ndarray:
    """cv2.blur(a, (3, 3)) with the default reflect-101 border, in float."""
    return correlate3x3(a, np.ones((3, 3)), "reflect101") / 9.0


def equalize_hist(img: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist per image (uint8)."""
    out = np.empty_like(img)
    for i, a in enumerate(img):
        hist = np.bincount(a.ravel(), minlength=256)
        first = int(np.argmax(hist > 0))
        total = a.size
        if hist[first] == total:
            out[i] = first
            continue
        scale = 255.0 / (total - hist[first])
        lut = np.zeros(256, np.float64)
        lut[first + 1:] = np.cumsum(hist[first + 1:]) * scale
        lut = np.clip(np.rint(lut.astype(np.float32)), 0, 255).astype(np.uint8)
        lut[:first + 1] = 0
        out[i] = lut[a]
    return out
