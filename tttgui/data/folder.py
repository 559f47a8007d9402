"""ImageFolder layout: one sub-folder per class, sorted alphabetically (torchvision's convention)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tttgui.data.base import ImageDataset
from tttgui.data.image import read_image
from tttgui.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class ImageFolderDataset(ImageDataset):
    def __init__(self, root: str | Path):
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"data folder {root} not found; expected a folder with one sub-folder per class")
        self.root = root
        self.source = str(root)
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not self.classes:
            raise UserError(f"data folder {root} has no class sub-folders; expected <class>/<image> files")
        files, targets = [], []
        for label, name in enumerate(self.classes):
            found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            files += found
            targets += [label] * len(found)
        if not files:
            raise UserError(f"data folder {root} has no images in its class sub-folders; expected "
                            f"files ending in {', '.join(sorted(IMAGE_SUFFIXES))}")
        self.files = files
        self.targets = np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int):
        return read_image(self.files[i]), int(self.targets[i])

    def labels(self):
        return self.targets.copy()
