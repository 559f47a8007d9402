"""Wrappers that select images yet keep the original index: deterministic subsets and class filters.

A wrapper of a wrapper is flattened, so `base` is always the data set as opened and `indices` index into it;
item i of a wrapper is base item indices[i], and its third element is that original index.
"""
from __future__ import annotations

import numpy as np

from tttgui.data.base import ImageDataset
from tttgui.errors import UserError


class Subset(ImageDataset):
    def __init__(self, dataset: ImageDataset, positions, note: str = ""):
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(dataset)):
            raise IndexError(f"subset positions out of range for a data set of {len(dataset)} images")
        if isinstance(dataset, Subset):
            self.base, self._indices = dataset.base, dataset.indices[positions]
            note = f"{dataset.note}, {note}" if dataset.note and note else dataset.note or note
        else:
            self.base, self._indices = dataset, positions
        self.note = note
        self.classes = self.base.classes
        self.source = f"{self.base.source} [{note}]" if note else self.base.source
        self.decode_threads = self.base.decode_threads

    @property
    def indices(self) -> np.ndarray:
        return self._indices

    def __len__(self) -> int:
        return len(self._indices)

    def load(self, i: int):
        return self.base.load(int(self.indices[i]))

    def original_index(self, i: int) -> int:
        return self.base.original_index(int(self.indices[i]))

    def item_name(self, i: int) -> str:
        return self.base.item_name(int(self.indices[i]))

    def labels(self):
        return self.base.labels()[self.indices]

    def arrays(self, indices=None):
        chosen = self.indices if indices is None else self.indices[np.asarray(indices, dtype=np.int64)]
        return self.base.arrays(chosen)


def random_subset(dataset: ImageDataset, n: int, seed: int = 0) -> ImageDataset:
    """n images drawn by seed, kept in data-set order; the same (n, seed) always gives the same images."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UserError(f"limit {n!r} for {dataset.source}; expected a whole number of images >= 1")
    # the same draw as training's --limit: sorted first n of a seeded permutation
    chosen = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
    return Subset(dataset, chosen, note=f"{n} images, seed {seed}")


def parse_classes(dataset: ImageDataset, classes) -> list[int]:
    """Class names or indices (a list, or one comma-separated string) -> sorted unique label indices."""
    if isinstance(classes, (str, int, np.integer)):
        classes = [c for c in str(classes).split(",") if c.strip()]
    names = list(dataset.classes)
    expected = f"expected one of {', '.join(names)} (or an index 0..{len(names) - 1})"
    if not names:
        raise UserError(f"data set {dataset.source} has no class names; expected a labelled data set to filter "
                        "by class")
    lowered = {n.lower(): k for k, n in enumerate(names)}
    chosen = set()
    for c in classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            k = int(c)
        elif isinstance(c, str) and c.strip() in names:
            k = names.index(c.strip())
        elif isinstance(c, str) and c.strip().lower() in lowered:
            k = lowered[c.strip().lower()]
        elif isinstance(c, str) and c.strip().lstrip("-").isdigit():
            k = int(c.strip())
        else:
            raise UserError(f"class {c!r} is not in {dataset.source}; {expected}")
        if not 0 <= k < len(names):
            raise UserError(f"class index {k} is out of range for {dataset.source}; {expected}")
        chosen.add(k)
    if not chosen:
        raise UserError(f"empty class filter for {dataset.source}; {expected}")
    return sorted(chosen)


def class_filter(dataset: ImageDataset, classes) -> ImageDataset:
    """Only the images of the given classes; labels keep their meaning (indices into the full class list)."""
    keep = parse_classes(dataset, classes)
    positions = np.flatnonzero(np.isin(dataset.labels(), keep))
    if len(positions) == 0:
        wanted = ", ".join(dataset.classes[k] for k in keep)
        raise UserError(f"data set {dataset.source} has no images of class {wanted}; expected a class that "
                        "occurs in it")
    return Subset(dataset, positions, note="classes " + ",".join(dataset.classes[k] for k in keep))
