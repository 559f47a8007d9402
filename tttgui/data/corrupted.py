"""The CIFAR-10-C / CIFAR-100-C release: a folder of <corruption>.npy (5·N×H×W×3 uint8) plus labels.npy.

Rows (s-1)·N ... s·N-1 hold severity s, in the order of the clean test set, so with a severity chosen item i
is clean test image i (its index is i). Without a severity all 5·N rows are one data set (index = row).
Files are memory-mapped: opening is instant and only the rows read are loaded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tttgui.data.base import ArrayDataset
from tttgui.data.names import CIFAR10_CLASSES, CIFAR100_CLASSES
from tttgui.errors import UserError

SEVERITIES = (1, 2, 3, 4, 5)
LABELS_FILE = "labels.npy"
CLASSES_FILE = "classes.txt"   # optional: one class name per line, in label order
EXPECTED_RELEASE = "a folder of <corruption>.npy (5·N×H×W×3 uint8) files and labels.npy (5·N labels)"


def is_release(path: Path) -> bool:
    return path.is_dir() and any(p.suffix == ".npy" for p in path.iterdir() if p.is_file())


def list_corruptions(root: str | Path) -> list[str]:
    root = Path(root)
    return sorted(p.stem for p in root.glob("*.npy") if p.name != LABELS_FILE and p.is_file())


def check_severity(severity, where) -> int:
    try:
        ok = not isinstance(severity, bool) and int(severity) == float(severity) and int(severity) in SEVERITIES
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"severity {severity!r} for {where}; expected an integer 1..5")
    return int(severity)


def release_classes(root: Path, max_label: int) -> list[str]:
    """Class names: classes.txt when present, else the CIFAR names the label range and folder name suggest."""
    listed = root / CLASSES_FILE
    if listed.is_file():
        names = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(names) <= max_label:
            raise UserError(f"class list {listed} names {len(names)} classes; expected at least {max_label + 1} "
                            f"for the labels in {LABELS_FILE}")
        return names
    if max_label < len(CIFAR10_CLASSES) and "100" not in root.name:
        return list(CIFAR10_CLASSES)
    if max_label < len(CIFAR100_CLASSES):
        return list(CIFAR100_CLASSES)
    return [str(k) for k in range(max_label + 1)]


def _open_npy(file: Path, expected: str) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # bad magic, truncated data, pickled objects, ...
        raise UserError(f"file {file} is truncated or not a .npy array ({exc.__class__.__name__}); "
                        f"expected {expected}") from None


class CorruptionDataset(ArrayDataset):
    def __init__(self, root: str | Path, corruption: str | None = None, severity=None, classes=None):
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"corruption folder {root} not found; expected {EXPECTED_RELEASE}")
        available = list_corruptions(root)
        if not available:
            raise UserError(f"corruption folder {root} has no <corruption>.npy files; expected {EXPECTED_RELEASE}")
        if corruption is None:
            if len(available) > 1:
                raise UserError(f"corruption folder {root} holds {len(available)} corruptions; expected one "
                                f"chosen from: {', '.join(available)}")
            corruption = available[0]
        if corruption not in available:
            raise UserError(f"corruption {corruption!r} is not in {root}; expected one of: {', '.join(available)}")
        file = root / f"{corruption}.npy"
        images = _open_npy(file, "(5·N, H, W, 3) uint8 images")
        if (images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8 or images.shape[0] == 0
                or images.shape[0] % len(SEVERITIES)):
            raise UserError(f"file {file} holds {images.dtype} of shape {images.shape}; expected (5·N, H, W, 3) "
                            "uint8, 5 severities stacked (CIFAR-10-C: (50000, 32, 32, 3))")
        rows, n = images.shape[0], images.shape[0] // len(SEVERITIES)
        labels_file = root / LABELS_FILE
        if not labels_file.is_file():
            raise UserError(f"labels file {labels_file} not found; expected {LABELS_FILE} next to {file.name}")
        labels = np.asarray(_open_npy(labels_file, f"{rows} integer labels"))
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) not in (rows, n):
            raise UserError(f"labels file {labels_file} holds {labels.dtype} of shape {labels.shape}; expected "
                            f"({rows},) integers, one per row of {file.name} (or ({n},) for one severity)")
        labels = labels.astype(np.int64)
        if len(labels) == n:
            labels = np.tile(labels, len(SEVERITIES))
        if labels.min() < 0:
            raise UserError(f"labels file {labels_file} has label {labels.min()}; expected labels >= 0")
        max_label = int(labels.max())
        names = list(classes) if classes is not None else release_classes(root, max_label)
        if max_label >= len(names):
            raise UserError(f"labels file {labels_file} has label {max_label}; expected labels below the "
                            f"{len(names)} class names given")
        self.root, self.file, self.corruption, self.available = root, file, corruption, available
        self.per_severity = n
        if severity is None:
            self.severity, self.first_row = None, 0
            super().__init__(images, labels, names, source=str(file))
        else:
            self.severity = check_severity(severity, file)
            self.first_row = (self.severity - 1) * n
            rows_s = slice(self.first_row, self.first_row + n)
            super().__init__(images[rows_s], labels[rows_s], names, source=f"{file} (severity {self.severity})")
