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
    n, h, w = img.shape
    q = _pad(img, 1, "nearest").astype(np.int32)  # Sobel 3×3 as integer slices (int32 holds every term)
    dx = q[:, :-2, 2:] - q[:, :-2, :-2] + 2 * (q[:, 1:-1, 2:] - q[:, 1:-1, :-2]) + q[:, 2:, 2:] - q[:, 2:, :-2]
    dy = q[:, 2:, :-2] - q[:, :-2, :-2] + 2 * (q[:, 2:, 1:-1] - q[:, :-2, 1:-1]) + q[:, 2:, 2:] - q[:, :-2, 2:]
    mag = np.abs(dx) + np.abs(dy)
    m = np.zeros((n, h + 2, w + 2), np.int32)  # magnitude outside the image counts as 0
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
    """Chamfer-5×5 distance of every pixel to the nearest zero pixel (float32; inf where there is none).

    OpenCV's two raster passes, vectorised over images and over each row: the rows above (below) are final,
    and the in-row step is a min-plus scan (cumulative minimum of d - j·a).
    """
    big = np.int64(1) << 40
    n, h, w = nonzero.shape
    p = np.full((n, h + 4, w + 4), big, np.int64)  # outside the image: no zero there
    p[:, 2:-2, 2:-2] = np.where(nonzero, big, 0)
    a, b, c = 65536, 91750, 143976
    ramp = np.arange(w, dtype=np.int64) * a
    for rows, near, far in ((range(h), -1, -2), (range(h - 1, -1, -1), 1, 2)):
        for i in rows:
            r1, r2 = p[:, i + 2 + near], p[:, i + 2 + far]
            row = p[:, i + 2, 2:-2]
            cand = np.minimum(r1[:, 2:-2] + a, np.minimum(r1[:, 1:-3], r1[:, 3:-1]) + b)
            np.minimum(cand, np.minimum(np.minimum(r1[:, :-4], r1[:, 4:]),
                                        np.minimum(r2[:, 1:-3], r2[:, 3:-1])) + c, out=cand)
            np.minimum(row, cand, out=cand)
            if near < 0:  # in-row step from the left, then (backward pass) from the right
                cand = np.minimum.accumulate(cand - ramp, axis=1) + ramp
            else:
                cand = np.minimum.accumulate((cand + ramp)[:, ::-1], axis=1)[:, ::-1] - ramp
            row[...] = cand
    d = p[:, 2:-2, 2:-2]
    out = (d.astype(np.float64) / 65536.0).astype(np.float32)
    out[d >= big] = np.inf
    return out


def blur3x3(a: np.ndarray) -> np.ndarray:
    """cv2.blur(a, (3, 3)) with the default reflect-101 border, in float."""
    return correlate3x3(a, np.ones((3, 3)), "reflect101") / 9.0


def equalize_hist(img: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist per image (uint8), all images at once (one histogram row per image)."""
    n = len(img)
    flat = img.reshape(n, -1)
    hist = np.bincount((flat + np.arange(n)[:, None] * 256).ravel(), minlength=256 * n).reshape(n, 256)
    first = np.argmax(hist > 0, axis=1)
    rows = np.arange(n)
    total = flat.shape[1]
    above = np.arange(256)[None, :] > first[:, None]
    rest = total - hist[rows, first]
    scale = 255.0 / np.maximum(rest, 1)  # a constant image (rest 0) is handled below
    lut = np.cumsum(np.where(above, hist, 0), axis=1) * scale[:, None]
    lut = np.clip(np.rint(np.where(above, lut, 0).astype(np.float32)), 0, 255).astype(np.uint8)
    out = np.take_along_axis(lut, flat.astype(np.intp), axis=1).reshape(img.shape)
    const = hist[rows, first] == total
    out[const] = first[const].astype(np.uint8)[:, None, None]
    return out
