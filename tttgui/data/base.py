"""The one data-set interface: item i -> (uint8 HWC RGB image, int label, int index), plus class names."""
from __future__ import annotations

import numpy as np


class ImageDataset:
    """Base class. Subclasses set `classes`, `source` and implement `__len__` and `load(i)`."""

    classes: list[str] = []
    source: str = ""

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, i: int) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a data set of {n} images")
        i %= n
        image, label = self.load(i)
        return image, label, i

    def labels(self) -> np.ndarray:
        """All labels (int64); subclasses override when they can do better than loading every image."""
        return np.array([self.load(i)[1] for i in range(len(self))], dtype=np.int64)

    def arrays(self, indices=None) -> tuple[np.ndarray, np.ndarray]:
        """Stack images (N×H×W×3 uint8; all must share one size) and labels (int64)."""
        idx = range(len(self)) if indices is None else indices
        images, labels = [], []
        for i in idx:
            image, label = self.load(int(i))
            images.append(image)
            labels.append(label)
        return np.stack(images), np.asarray(labels, dtype=np.int64)


class ArrayDataset(ImageDataset):
    """Images already in memory (N×H×W×3 uint8)."""

    def __init__(self, images: np.ndarray, targets, classes, source: str = "<arrays>"):
        self.images, self.targets = images, np.asarray(targets, dtype=np.int64)
        self.classes, self.source = list(classes), source

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int):
        return self.images[i], int(self.targets[i])

    def labels(self):
        return np.asarray(self.targets, dtype=np.int64)

    def arrays(self, indices=None):
        if indices is None:
            return self.images, self.labels()
        idx = np.asarray(indices, dtype=np.int64)
        return self.images[idx], self.labels()[idx]
