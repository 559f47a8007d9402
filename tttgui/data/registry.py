"""Detect a data set's layout from its path and open it."""
from __future__ import annotations

from pathlib import Path

from tttgui.data.folder import ImageFolderDataset
from tttgui.errors import UserError


def open_dataset(path, **kwargs):
    path = Path(path)
    if not path.exists():
        raise UserError(f"data path {path} not found; expected an image folder, a CIFAR folder or an image file")
    if path.is_dir():
        return ImageFolderDataset(path)
    raise UserError(f"data path {path} is not a supported data set; expected a folder with class sub-folders")
