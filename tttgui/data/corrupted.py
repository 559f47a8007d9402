"""The CIFAR-10-C / CIFAR-100-C release: a folder of <corruption>.npy (K·N×H×W×3 uint8) plus labels.npy.

Rows k·N ... (k+1)·N-1 hold the k-th severity, in the order of the clean test set, so with a severity chosen item
i is clean test image i (its index is i). Without a severity all K·N rows are one data set (index = row).
A folder `tttgui corrupt` wrote says which severities, how many images and whether it is finished in corrupt.json;
one without it (the official download) holds the 5 severities 1..5. Files are memory-mapped: opening is instant.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tttgui.data.base import ArrayDataset
from tttgui.data.names import CIFAR10_CLASSES, CIFAR100_CLASSES
from tttgui.errors import UserError

SEVERITIES = (1, 2, 3, 4, 5)
LABELS_FILE = "labels.npy"
META_FILE = "corrupt.json"     # written by tttgui corrupt; the contract for the rows of every file
CLASSES_FILE = "classes.txt"   # optional: one class name per line, in label order
EXPECTED_RELEASE = "a folder of <corruption>.npy (5·N×H×W×3 uint8) files and labels.npy (5·N labels)"
EXPECTED_META = ('"corruptions" (names), "severities" (distinct integers 1..5), "images" (a positive count), '
                 '"complete" and "labeled" (true/false), "classes" (names)')


def is_data_file(path: Path) -> bool:
    """A <corruption>.npy; hidden and temporary files (what a killed writer leaves) are never data."""
    name = path.name
    return (name.endswith(".npy") and name != LABELS_FILE and not name.startswith(".")
            and not name.endswith(".tmp.npy") and path.is_file())


def is_release(path: Path) -> bool:
    return path.is_dir() and ((path / META_FILE).is_file() or any(is_data_file(p) for p in path.iterdir()))


def read_meta(root: Path) -> dict | None:
    """corrupt.json, checked; None for a folder without one (the official download)."""
    file = Path(root) / META_FILE
    if not file.is_file():
        return None
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{file} cannot be read ({exc.__class__.__name__}); expected the JSON tttgui corrupt "
                        f"writes, with {EXPECTED_META}") from None
    if not isinstance(meta, dict):
        meta = {"severities": None}
    sev, n = meta.get("severities"), meta.get("images")
    ok = (isinstance(sev, list) and sev and all(type(s) is int and s in SEVERITIES for s in sev)
          and len(set(sev)) == len(sev) and type(n) is int and n > 0
          and _names(meta.get("corruptions")) and _names(meta.get("classes", []))
          and all(type(meta.get(k, True)) is bool for k in ("complete", "labeled")))
    if not ok:
        raise UserError(f"{file} does not describe a release; expected {EXPECTED_META}")
    return meta


def _names(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def list_corruptions(root: str | Path) -> list[str]:
    root = Path(root)
    names = sorted(p.stem for p in root.glob("*.npy") if is_data_file(p))
    meta = read_meta(root)
    if meta is not None:   # a file corrupt.json does not list is not part of the release
        names = [n for n in names if n in meta["corruptions"]]
    return names


def check_severity(severity, where) -> int:
    try:
        ok = not isinstance(severity, bool) and int(severity) == float(severity) and int(severity) in SEVERITIES
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"severity {severity!r} for {where}; expected an integer 1..5")
    return int(severity)


def release_classes(root: Path, max_label: int, meta: dict | None = None) -> list[str]:
    """Class names: classes.txt, else corrupt.json's, else the CIFAR names the label range and folder suggest."""
    listed = root / CLASSES_FILE
    if listed.is_file():
        names = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(names) <= max_label:
            raise UserError(f"class list {listed} names {len(names)} classes; expected at least {max_label + 1} "
                            f"for the labels in {LABELS_FILE}")
        return names
    if meta is not None and "classes" in meta:
        return list(meta["classes"])
    if max_label < len(CIFAR10_CLASSES) and "100" not in root.name:
        return list(CIFAR10_CLASSES)
    if max_label < len(CIFAR100_CLASSES):
        return list(CIFAR100_CLASSES)
    # a guess of numbered classes would hide a broken labels file (255 = "no label" cast to uint8)
    raise UserError(f"labels file {root / LABELS_FILE} has label {max_label} and no class list; expected labels "
                    f"below {len(CIFAR100_CLASSES)} (CIFAR-10/100) or a {CLASSES_FILE} naming every class")


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
        meta = read_meta(root)
        if meta is not None and not meta.get("complete", True):
            raise UserError(f"corruption folder {root} is incomplete (tttgui corrupt was interrupted); expected a "
                            f"finished release: run tttgui corrupt --resume --out {root} with the same options")
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
        severities = tuple(meta["severities"]) if meta else SEVERITIES
        k = len(severities)
        images = _open_npy(file, f"({k}·N, H, W, 3) uint8 images")
        rows = images.shape[0] if images.ndim else 0
        if meta is not None:
            n = meta["images"]
            expected = f"({k * n}, H, W, 3) uint8: {k} severities of {n} images, as {META_FILE} says"
        else:
            n, expected = rows // k, f"({k}·N, H, W, 3) uint8, {k} severities stacked (CIFAR-10-C: (50000, 32, 32, 3))"
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8 or rows == 0 or rows != k * n:
            raise UserError(f"file {file} holds {images.dtype} of shape {images.shape}; expected {expected}")
        if meta is not None and not meta.get("labeled", True):
            labels = np.full(rows, -1, np.int64)   # written from unlabeled images: no labels.npy
        else:
            labels = self._read_labels(root / LABELS_FILE, file, rows, n, k)
        max_label = int(labels.max())
        names = list(classes) if classes is not None else release_classes(root, max_label, meta)
        if max_label >= len(names):
            raise UserError(f"labels file {root / LABELS_FILE} has label {max_label}; expected labels below the "
                            f"{len(names)} class names given")
        self.root, self.file, self.corruption, self.available = root, file, corruption, available
        self.severities, self.per_severity = severities, n
        if severity is None:
            self.severity, self.first_row = None, 0
            super().__init__(images, labels, names, source=str(file))
        else:
            self.severity = check_severity(severity, file)
            if self.severity not in severities:
                raise UserError(f"severity {self.severity} is not in {file} (it holds severities "
                                f"{', '.join(map(str, severities))}); expected one of those")
            self.first_row = severities.index(self.severity) * n
            rows_s = slice(self.first_row, self.first_row + n)
            super().__init__(images[rows_s], labels[rows_s], names, source=f"{file} (severity {self.severity})")

    @staticmethod
    def _read_labels(labels_file: Path, file: Path, rows: int, n: int, k: int) -> np.ndarray:
        if not labels_file.is_file():
            raise UserError(f"labels file {labels_file} not found; expected {LABELS_FILE} next to {file.name}")
        labels = np.asarray(_open_npy(labels_file, f"{rows} integer labels"))
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) not in (rows, n):
            raise UserError(f"labels file {labels_file} holds {labels.dtype} of shape {labels.shape}; expected "
                            f"({rows},) integers, one per row of {file.name} (or ({n},) for one severity)")
        labels = labels.astype(np.int64)
        if len(labels) == n:
            labels = np.tile(labels, k)
        if labels.min() < 0:
            raise UserError(f"labels file {labels_file} has label {labels.min()}; expected labels >= 0")
        return labels
