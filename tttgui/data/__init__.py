"""Data sets: one interface yielding (uint8 HWC RGB image, label, index) with class names."""
from tttgui.data.base import ArrayDataset, ImageDataset
from tttgui.data.folder import ImageFolderDataset
from tttgui.data.image import read_image

__all__ = ["ArrayDataset", "ImageDataset", "ImageFolderDataset", "read_image"]


def open_dataset(path, **kwargs):
    """Open a data set by path, detecting its layout (see tttgui.data.registry)."""
    from tttgui.data.registry import open_dataset as _open

    return _open(path, **kwargs)
