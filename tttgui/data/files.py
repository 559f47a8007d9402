"""Image files without labels: one file (opened by path) or a list of files (the GUI's drag-and-drop)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tttgui.data.base import ImageDataset
from tttgui.data.image import EXPECTED, read_image
from tttgui.errors import UserError

UNLABELED = -1


class ImageFilesDataset(ImageDataset):
    """Every label is -1; `classes` are whatever the caller says the model predicts (may be empty).

    preload=True decodes every file now, so a corrupt file is reported when it is opened, not later.
    """

    decode_threads = 4

    def __init__(self, paths, classes=(), preload: bool = False, source: str | None = None):
        files = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not files:
            raise UserError(f"no image files given{f' in {source}' if source else ''}; {EXPECTED}")
        for f in files:
            if not f.exists():
                raise UserError(f"image {f} not found; {EXPECTED}")
            if not f.is_file():
                raise UserError(f"image {f} is not a file; {EXPECTED}")
        self.files = files
        self.classes = list(classes)
        self.source = source or (str(files[0]) if len(files) == 1 else f"{len(files)} image files")
        self._decoded = [read_image(f) for f in files] if preload else None

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int):
        image = self._decoded[i].copy() if self._decoded is not None else read_image(self.files[i])
        return image, UNLABELED

    def item_name(self, i: int) -> str:
        return str(self.files[i])

    def labels(self):
        return np.full(len(self.files), UNLABELED, dtype=np.int64)
