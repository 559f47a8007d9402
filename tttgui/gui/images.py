"""numpy uint8 images -> Qt pixmaps, scaled without smoothing so small (32 px) images stay honest."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap


def to_pixmap(image: np.ndarray, size: int | None = None) -> QPixmap:
    a = np.ascontiguousarray(image, dtype=np.uint8)
    if a.ndim == 2:
        a = np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
    h, w = a.shape[:2]
    qimg = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # copy: a may be freed
    pix = QPixmap.fromImage(qimg)
    if size:
        mode = Qt.TransformationMode.FastTransformation if max(h, w) < size else \
            Qt.TransformationMode.SmoothTransformation
        pix = pix.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, mode)
    return pix


def mosaic(images: np.ndarray, cols: int = 8, gap: int = 2) -> np.ndarray:
    """Tile N×H×W×3 images into one image (for the augmented-views preview)."""
    n, h, w = images.shape[:3]
    rows = max(1, -(-n // cols))
    cols = min(cols, n) or 1
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 128, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = images[i]
    return out
