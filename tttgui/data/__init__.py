"""Data sets: one interface yielding (uint8 HWC RGB image, label, original index) with class names."""
from tttgui.data.base import ArrayDataset, ImageDataset
from tttgui.data.cifar import CifarDataset, download_cifar
from tttgui.data.corrupted import SEVERITIES, CorruptionDataset, list_corruptions
from tttgui.data.files import ImageFilesDataset
from tttgui.data.folder import ImageFolderDataset
from tttgui.data.image import read_image
from tttgui.data.names import CIFAR10_CLASSES, CIFAR100_CLASSES
from tttgui.data.registry import DataSpec, open_dataset
from tttgui.data.subset import Subset, class_filter, random_subset

__all__ = ["ArrayDataset", "CIFAR10_CLASSES", "CIFAR100_CLASSES", "CifarDataset", "CorruptionDataset", "DataSpec",
           "ImageDataset", "ImageFilesDataset", "ImageFolderDataset", "SEVERITIES", "Subset", "class_filter",
           "download_cifar", "list_corruptions", "open_dataset", "random_subset", "read_image"]
