"""Opening whatever the user points at: a data set folder (through the data layer) or one image file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


class SingleImage:
    """One image file as a one-item data set with an unknown label (-1)."""

    def __init__(self, path: Path, classes):
        from tttgui.data import read_image

        self.image = read_image(path)
        self.classes = list(classes or [])
        self.source = str(path)

    def __len__(self):
        return 1

    def __getitem__(self, i):
        if i not in (0, -1):
            raise IndexError(f"index {i} out of range for a single image")
        return self.image, -1, 0


def open_any(path, classes=None):
    """(dataset, labels as int64 array with -1 for unknown)."""
    from tttgui.data import open_dataset

    p = Path(path)
    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
        try:
            ds = open_dataset(p)
        except Exception:  # the data layer may not take single files; read it ourselves
            ds = SingleImage(p, classes)
    else:
        ds = open_dataset(p)
    labels = ds.labels() if hasattr(ds, "labels") else np.array([ds[i][1] for i in range(len(ds))])
    labels = np.asarray([(-1 if v is None else int(v)) for v in labels], dtype=np.int64)
    if not getattr(ds, "classes", None) and classes:
        ds.classes = list(classes)
    return ds, labels


def download_dir() -> Path:
    """Download the CIFAR-10 test set with torchvision and lay it out as an image folder; returns the folder."""
    from PySide6.QtCore import QStandardPaths
    from torchvision.datasets import CIFAR10

    base = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) or
                Path.home() / ".local" / "share" / "tttgui") / "cifar10"
    out = base / "test"
    if out.is_dir() and any(out.iterdir()):
        return out
    ds = CIFAR10(str(base / "download"), train=False, download=True)
    from PIL import Image

    tmp = base / "test.partial"
    for i, (img, label) in enumerate(zip(ds.data, ds.targets)):
        d = tmp / ds.classes[label]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:05d}.png")
    tmp.rename(out)
    return out
