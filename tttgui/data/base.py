"""The one data-set interface: item i -> (uint8 HWC RGB image, int label, int original index), plus class names.

Labels are indices into `classes`; -1 means "no label" (single image files). The third item is the index in the
data set as it was opened (a wrapper such as a subset reports its base's index, so the GUI and eval can name
the same image whatever filter is applied).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tttgui.errors import UserError


class ImageDataset:
    """Base class. Subclasses set `classes`, `source` and implement `__len__` and `load(i)`."""

    classes: list[str] = []
    source: str = ""
    decode_threads: int = 1   # >1 for data sets that decode files (PIL releases the GIL while decoding)

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, i: int) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def original_index(self, i: int) -> int:
        """Index of item i in the data set as opened (wrappers map it; plain data sets return i)."""
        return i

    @property
    def indices(self) -> np.ndarray:
        """Original index of every item (wrappers select; a data set as opened is 0..N-1)."""
        return np.arange(len(self), dtype=np.int64)

    def item_name(self, i: int) -> str:
        """Human-readable name of item i for messages (the file for file-based data sets)."""
        return f"{self.source}[{i}]"

    def __getitem__(self, i) -> tuple[np.ndarray, int, int]:
        i = self._check_index(i)
        image, label = self.load(i)
        return image, label, self.original_index(i)

    def _check_index(self, i) -> int:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a data set of {n} images")
        return i % n

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, {len(self)} images, {len(self.classes)} classes)"

    def labels(self) -> np.ndarray:
        """All labels (int64); subclasses override when they can do better than loading every image."""
        return np.array([self.load(i)[1] for i in range(len(self))], dtype=np.int64)

    def arrays(self, indices=None) -> tuple[np.ndarray, np.ndarray]:
        """New arrays: images N×H×W×3 uint8 (all must share one size) and labels (int64)."""
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        idx = np.array([self._check_index(i) for i in idx], dtype=np.int64)
        if len(idx) == 0:
            return np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0, np.int64)
        first, _ = self.load(int(idx[0]))
        images = np.empty((len(idx),) + first.shape, dtype=np.uint8)
        labels = np.empty(len(idx), dtype=np.int64)

        def fill(chunk):
            for k in chunk:
                image, label = self.load(int(idx[k]))
                if image.shape != first.shape:
                    raise UserError(
                        f"image {self.item_name(int(idx[k]))} is {image.shape[1]}x{image.shape[0]}; expected "
                        f"{first.shape[1]}x{first.shape[0]} like the first image, to stack them (resize first)")
                images[k], labels[k] = image, label

        threads = max(1, min(self.decode_threads, os.cpu_count() or 1, len(idx) // 256))
        chunks = np.array_split(np.arange(len(idx)), threads * 8 if threads > 1 else 1)
        if threads == 1:
            fill(chunks[0])
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(fill, chunks))  # re-raises the first error (e.g. a corrupt file)
        return images, labels


class ArrayDataset(ImageDataset):
    """Images already in memory or memory-mapped (N×H×W×3 uint8)."""

    def __init__(self, images: np.ndarray, targets, classes, source: str = "<arrays>"):
        self.images, self.targets = images, np.asarray(targets, dtype=np.int64)
        self.classes, self.source = list(classes), source
        if self.images.ndim != 4 or self.images.shape[3] != 3 or len(self.targets) != len(self.images):
            raise UserError(f"arrays for {source} have shapes {self.images.shape} and {self.targets.shape}; "
                            "expected N×H×W×3 images and N labels")

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int):
        # a copy, so callers own it (and memory-mapped files are never written through)
        return np.array(self.images[i], dtype=np.uint8), int(self.targets[i])

    def labels(self):
        return self.targets.copy()

    def arrays(self, indices=None):
        if indices is None:
            return np.array(self.images, dtype=np.uint8), self.labels()
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"indices out of range for a data set of {n} images")
        return np.array(self.images[idx], dtype=np.uint8), self.targets[idx].copy()
