"""CIFAR-10 / CIFAR-100 in torchvision's python layout, read with pickle + numpy (no torchvision needed).

cifar-10-batches-py/: data_batch_1..5, test_batch, batches.meta (label_names)
cifar-100-python/:    train, test, meta (fine_label_names; labels are the 100 fine labels)
Each batch pickles {'data': N×3072 uint8 (3×32×32 planes), 'labels' or 'fine_labels': N ints}.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tttgui.data.base import ArrayDataset
from tttgui.errors import UserError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class CifarLayout:
    name: str            # "cifar10" or "cifar100"
    title: str
    folder: str          # the folder torchvision extracts
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    names_key: str
    labels_key: str

    def expected(self) -> str:
        files = ", ".join(self.train + self.test + (self.meta,))
        return f"a {self.title} python folder ({self.folder}/ with {files})"


CIFAR10 = CifarLayout("cifar10", "CIFAR-10", "cifar-10-batches-py",
                      tuple(f"data_batch_{k}" for k in range(1, 6)), ("test_batch",), "batches.meta",
                      "label_names", "labels")
CIFAR100 = CifarLayout("cifar100", "CIFAR-100", "cifar-100-python", ("train",), ("test",), "meta",
                       "fine_label_names", "fine_labels")
LAYOUTS = {"cifar10": CIFAR10, "cifar100": CIFAR100}


def find_cifar(path: Path) -> tuple[CifarLayout, Path] | None:
    """The CIFAR layout at `path` (the python folder itself or its parent), or None."""
    path = Path(path)
    if not path.is_dir():
        return None
    for layout in LAYOUTS.values():
        has_files = (path / layout.meta).is_file() and any((path / f).is_file() for f in layout.train + layout.test)
        if path.name == layout.folder or has_files:
            return layout, path
    found = [(layout, path / layout.folder) for layout in LAYOUTS.values() if (path / layout.folder).is_dir()]
    if len(found) > 1:
        raise UserError(f"data folder {path} holds both {CIFAR10.folder} and {CIFAR100.folder}; expected the "
                        "path of one of them")
    return found[0] if found else None


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file must not be able to run code."""

    ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
               ("numpy._core.numeric", "_frombuffer"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}

    def find_class(self, module, name):
        if module.startswith("numpy.core"):  # pickles from numpy < 2 (the official release)
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _read_pickle(file: Path, layout: CifarLayout) -> dict:
    if not file.is_file():
        raise UserError(f"CIFAR file {file} not found; expected {layout.expected()}")
    try:
        with open(file, "rb") as f:
            entry = _ArraysOnly(f, encoding="latin1").load()
    except Exception as exc:
        raise UserError(f"CIFAR file {file} is corrupt or truncated ({exc.__class__.__name__}); expected a "
                        f"pickled batch of {layout.expected()}") from None
    if not isinstance(entry, dict):
        raise UserError(f"CIFAR file {file} holds a {type(entry).__name__}; expected a pickled dict of "
                        f"{layout.expected()}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _read_batch(file: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    entry = _read_pickle(file, layout)
    data, labels = entry.get("data"), entry.get(layout.labels_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise UserError(f"CIFAR file {file} has 'data' of shape {shape}; expected N×3072 uint8 rows (3×32×32)")
    if labels is None or len(labels) != len(data):
        got = "no" if labels is None else len(labels)
        raise UserError(f"CIFAR file {file} has {got} '{layout.labels_key}' for {len(data)} images; expected "
                        "one label per image")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


def _read_names(file: Path, layout: CifarLayout) -> list[str]:
    names = _read_pickle(file, layout).get(layout.names_key)
    if not names:
        raise UserError(f"CIFAR file {file} has no '{layout.names_key}'; expected the class names of "
                        f"{layout.title}")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


class CifarDataset(ArrayDataset):
    """One split of CIFAR-10 or CIFAR-100, read completely into memory (30 MB test, 150 MB train)."""

    def __init__(self, root: str | Path, split: str = "test"):
        root = Path(root)
        if split not in SPLITS:
            raise UserError(f"split {split!r} for {root}; expected one of {', '.join(SPLITS)}")
        found = find_cifar(root)
        if found is None:
            raise UserError(f"data folder {root} is not a CIFAR folder; expected {CIFAR10.folder}/ or "
                            f"{CIFAR100.folder}/ (or their parent)")
        layout, folder = found
        parts = [_read_batch(folder / name, layout) for name in getattr(layout, split)]
        names = _read_names(folder / layout.meta, layout)
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        if labels.min() < 0 or labels.max() >= len(names):
            raise UserError(f"CIFAR folder {folder} has labels {labels.min()}..{labels.max()}; expected "
                            f"0..{len(names) - 1} for the {len(names)} classes in {layout.meta}")
        super().__init__(images, labels, names, source=f"{folder} ({split})")
        self.layout, self.folder, self.split = layout, folder, split


def download_cifar(root: str | Path, name: str = "cifar10") -> Path:
    """Fetch and extract a CIFAR release into root through torchvision (it shows a progress bar).

    Returns the python folder. Without a network this raises a one-line UserError.
    """
    if name not in LAYOUTS:
        raise UserError(f"data set {name!r} cannot be downloaded; expected one of {', '.join(LAYOUTS)}")
    layout, root = LAYOUTS[name], Path(root)
    from torchvision import datasets  # only here: reading never needs torchvision

    fetch = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    try:
        root.mkdir(parents=True, exist_ok=True)
        fetch(str(root), train=False, download=True)  # downloads, checks the MD5, extracts both splits
    except Exception as exc:  # URLError/socket errors (OSError), integrity failures (RuntimeError), ...
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        raise UserError(f"could not download {layout.title} into {root} ({reason}); expected a network "
                        f"connection, or {layout.folder}/ extracted there by hand") from None
    return root / layout.folder
