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
    """Download the CIFAR-10 release through the data layer into the app's data folder; returns the python
    folder, which open_dataset reads (test split) without unpacking it into image files."""
    from PySide6.QtCore import QStandardPaths

    from tttgui.data.cifar import download_cifar

    base = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) or
                Path.home() / ".local" / "share" / "tttgui")
    return download_cifar(base / "cifar10", "cifar10")
