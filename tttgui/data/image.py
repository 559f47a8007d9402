"""Read one image file as uint8 HWC RGB: grayscale, palette, RGBA, 16-bit and EXIF orientation handled."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tttgui.errors import UserError

EXPECTED = "expected an image file Pillow can read (PNG, JPEG, ...)"


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise UserError(f"image {path} not found; {EXPECTED}")
    if path.is_dir():
        raise UserError(f"image {path} is a folder; {EXPECTED}")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return to_rgb_array(im)
    except UserError:
        raise
    except Exception as exc:  # Pillow raises many types for bad files (OSError, SyntaxError, struct.error, ...)
        raise UserError(f"image {path} is corrupt or truncated ({exc.__class__.__name__}); {EXPECTED}") from None


def to_rgb_array(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 RGB; transparency is composited on white (what a viewer shows)."""
    if im.mode.startswith("I;16"):
        return _gray_to_rgb(np.asarray(im, dtype=np.float64) / 65535.0)
    if im.mode == "I":
        a = np.asarray(im, dtype=np.float64)
        # 32-bit integer images are usually 16-bit data (older Pillow opened 16-bit PNGs as "I")
        return _gray_to_rgb(a / (65535.0 if a.max(initial=0) > 255 else 255.0))
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        return _gray_to_rgb(a if a.max(initial=0) <= 1.0 else a / 255.0)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def _gray_to_rgb(a: np.ndarray) -> np.ndarray:
    a = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
