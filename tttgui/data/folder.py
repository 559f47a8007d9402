"""ImageFolder layout: one sub-folder per class, sorted alphabetically; file order as torchvision's ImageFolder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tttgui.data.base import ImageDataset
from tttgui.data.image import read_image
from tttgui.errors import UserError

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files_under(folder: Path) -> list[Path]:
    # the same order as torchvision (sorted directories, sorted names, following links), so indices agree; but
    # each real folder and file is listed once: a link loop would repeat its images until the path is too long
    walked, seen_dirs = [], set()
    for here, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(here)
        if real in seen_dirs:
            dirs[:] = []
            continue
        seen_dirs.add(real)
        dirs.sort()   # the first of two paths to one folder is kept, whatever order the file system lists
        walked.append((here, real, names))
    found, seen_files = [], set()
    for here, real, names in sorted(walked):
        for n in sorted(n for n in names if is_image_file(Path(n))):
            path = os.path.join(here, n)
            key = os.path.realpath(path) if os.path.islink(path) else os.path.join(real, n)
            if key not in seen_files:
                seen_files.add(key)
                found.append(Path(path))
    return found


class ImageFolderDataset(ImageDataset):
    decode_threads = 4

    def __init__(self, root: str | Path):
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"data folder {root} not found; expected a folder with one sub-folder per class")
        self.root = root
        self.source = str(root)
        self.classes = class_dirs(root)
        if not self.classes:
            raise UserError(f"data folder {root} has no class sub-folders; expected <class>/<image> files")
        files, targets = [], []
        for label, name in enumerate(self.classes):
            found = image_files_under(root / name)
            files += found
            targets += [label] * len(found)
        if not files:
            raise UserError(f"data folder {root} has no images in its class sub-folders; expected "
                            f"files ending in {', '.join(IMAGE_SUFFIXES)}")
        self.files = files
        self.targets = np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int):
        return read_image(self.files[i]), int(self.targets[i])

    def item_name(self, i: int) -> str:
        return str(self.files[i])

    def labels(self):
        return self.targets.copy()
