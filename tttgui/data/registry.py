"""Detect a data set's layout from its path and open it, then apply the class filter and the subset.

Layouts, in the order they are tried for a folder:
  CIFAR python folder (cifar-10-batches-py/, cifar-100-python/) or its parent  -> CifarDataset (split)
  folder of <corruption>.npy + labels.npy (CIFAR-10-C release)              -> CorruptionDataset
  folder whose sub-folders are splits (train/, test/, ...)                  -> the split's ImageFolder
  folder of class sub-folders                                                -> ImageFolderDataset
  folder of image files only                                                 -> ImageFilesDataset (label -1)
A file: <corruption>.npy inside a release, or any image Pillow reads (label -1). A list of paths: image files.
`split` defaults to "test" where a layout has splits and is ignored where it has none.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tttgui.data.base import ImageDataset
from tttgui.data.cifar import CifarDataset, find_cifar
from tttgui.data.corrupted import CLASSES_FILE, LABELS_FILE, CorruptionDataset, is_release, read_meta
from tttgui.data.files import ImageFilesDataset
from tttgui.data.folder import ImageFolderDataset, class_dirs, is_image_file
from tttgui.data.subset import class_filter, random_subset
from tttgui.errors import UserError

SPLIT_NAMES = ("train", "test", "val", "valid", "validation")
DEFAULT_SPLIT = "test"
PRELOAD_FILES = 256   # decode short file lists when opened, so a bad file is reported at once
EXPECTED_DATA = ("an image folder (<class>/<image>), a CIFAR python folder, a folder of <corruption>.npy + "
                 "labels.npy, or an image file")


@dataclass(frozen=True)
class DataSpec:
    """Everything needed to reopen a data set (sessions and the CLI keep this, not the data set)."""

    path: str
    split: str | None = None
    corruption: str | None = None
    severity: int | None = None
    classes: tuple | None = None      # class filter: names or indices
    limit: int | None = None          # n images drawn by seed (after the class filter)
    seed: int = 0
    class_names: tuple | None = None  # names for data sets that store none (image files, -C releases)

    def open(self) -> ImageDataset:
        return open_dataset(self.path, split=self.split, corruption=self.corruption, severity=self.severity,
                            classes=self.classes, limit=self.limit, seed=self.seed, class_names=self.class_names)


def open_dataset(path, split=None, corruption=None, severity=None, classes=None, limit=None, seed=0,
                 class_names=None) -> ImageDataset:
    if isinstance(path, (list, tuple)):
        ds = open_files(path, class_names)
    else:
        ds = open_layout(Path(path), split, corruption, severity, class_names)
    if (corruption is not None or severity is not None) and not hasattr(ds, "corruption"):
        raise UserError(f"data path {path} is not a corruption release, so corruption/severity do not apply; "
                        "expected a folder of <corruption>.npy + labels.npy")
    if classes is not None:
        ds = class_filter(ds, classes)
    if limit is not None:
        ds = random_subset(ds, limit, seed)
    return ds


def open_files(paths, class_names=None) -> ImageDataset:
    files = [Path(p) for p in paths]
    for f in files:
        if f.is_dir():
            raise UserError(f"{f} is a folder; expected image files only in a list of paths")
    return ImageFilesDataset(files, classes=class_names or (), preload=len(files) <= PRELOAD_FILES)


def open_layout(path: Path, split, corruption, severity, class_names) -> ImageDataset:
    if not path.exists():
        raise UserError(f"data path {path} not found; expected {EXPECTED_DATA}")
    if path.is_file():
        return open_file(path, corruption, severity, class_names)
    cifar = find_cifar(path)
    if cifar is not None:
        return CifarDataset(cifar[1], split or DEFAULT_SPLIT)
    if is_release(path):
        return open_release(path, corruption, severity, class_names)
    subdirs = class_dirs(path)
    if subdirs and all(d.lower() in SPLIT_NAMES for d in subdirs):
        chosen = split or DEFAULT_SPLIT
        if chosen not in subdirs:
            raise UserError(f"data folder {path} has no split {chosen!r}; expected one of: {', '.join(subdirs)}")
        return open_layout(path / chosen, None, corruption, severity, class_names)
    if subdirs:
        return ImageFolderDataset(path)
    images = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
    if images:
        return ImageFilesDataset(images, classes=class_names or (), preload=len(images) <= PRELOAD_FILES,
                                 source=str(path))
    raise UserError(f"data folder {path} is empty (no class sub-folders, images or .npy files); "
                    f"expected {EXPECTED_DATA}")


def open_file(path: Path, corruption, severity, class_names) -> ImageDataset:
    if path.suffix == ".npy":
        if path.name == LABELS_FILE:
            raise UserError(f"file {path} holds labels only; expected a <corruption>.npy next to it")
        if corruption is not None and corruption != path.stem:
            raise UserError(f"corruption {corruption!r} does not match file {path}; expected {path.stem!r}")
        return open_release(path.parent, path.stem, severity, class_names)
    return ImageFilesDataset([path], classes=class_names or (), preload=True)


def open_release(root: Path, corruption, severity, class_names) -> ImageDataset:
    """A release that names no classes (CIFAR-10-C as published) is read under the CIFAR names its label range
    suggests when the caller's (a model's) classes include them all, and so scored by name: a CIFAR model with its
    classes in another order scores airplanes as airplanes. When the model knows a suggested name at another index
    the two readings disagree and it is refused; otherwise the model's order stands in (releases of other classes
    made elsewhere), as documented."""
    if names_own_classes(root) or not class_names:
        return CorruptionDataset(root, corruption, severity, None)
    try:
        named = CorruptionDataset(root, corruption, severity, None)
    except UserError:   # no CIFAR reading of these labels: the model's order, and the release's own errors
        return CorruptionDataset(root, corruption, severity, class_names)
    model = [str(n).strip().lower() for n in class_names]
    present = sorted({int(t) for t in named.targets if t >= 0})
    guessed = {k: str(named.classes[k]).strip().lower() for k in present}
    if all(g in model for g in guessed.values()):
        return named
    conflict = [named.classes[k] for k, g in guessed.items() if g in model and model.index(g) != k]
    if conflict:
        raise UserError(f"release {root} names no classes; read as CIFAR's, its {', '.join(map(str, conflict[:3]))} "
                        f"would be another class of the model's by position; expected a {CLASSES_FILE} in {root} "
                        "naming its classes in label order")
    return CorruptionDataset(root, corruption, severity, class_names)


def names_own_classes(root: Path) -> bool:
    """classes.txt, or a class list in the corrupt.json that `tttgui corrupt` writes."""
    return (root / CLASSES_FILE).is_file() or bool((read_meta(root) or {}).get("classes"))
