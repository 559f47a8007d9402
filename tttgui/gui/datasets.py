"""Opening whatever the user points at: a data set folder (through the data layer) or one image file."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def open_any(path, classes=None):
    """(dataset, labels as int64 with -1 for unknown) through the data layer; `classes` names the classes of
    data sets that store none (single images, -C releases), taken from the model."""
    from tttgui.data import open_dataset

    ds = open_dataset(Path(path), class_names=tuple(classes) if classes else None)
    return ds, np.asarray(ds.labels(), dtype=np.int64)


def download_dir() -> Path:
    """Download the CIFAR-10 release through the data layer into the app's data folder; returns the python
    folder, which open_dataset reads (test split) without unpacking it into image files."""
    from PySide6.QtCore import QStandardPaths

    from tttgui.data.cifar import download_cifar

    base = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) or
                Path.home() / ".local" / "share" / "tttgui")
    return download_cifar(base / "cifar10", "cifar10")
