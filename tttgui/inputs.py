"""What `tttgui eval` (and the window's batch evaluation) evaluates on: clean images it corrupts itself, or a
corruption release (the official CIFAR-10-C / CIFAR-100-C download, or what `tttgui corrupt` writes) whose
images are already corrupted: a corruption picks a file, a severity picks its block of rows, and nothing is
corrupted twice. Every file of a release must hold the same images in the same order (its labels say so).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tttgui.data import open_dataset
from tttgui.data.corrupted import CorruptionDataset, is_release, list_corruptions
from tttgui.data.registry import open_release
from tttgui.errors import UserError

CLEAN, RELEASE = "clean", "release"


@dataclass
class EvalInput:
    kind: str                          # CLEAN | RELEASE
    path: Path
    classes: list[str]                 # the data's class names, in its label order
    labels: np.ndarray                 # data labels of every image (-1: none)
    corruptions: tuple[str, ...] = ()  # a release: the files it holds
    severities: tuple[int, ...] = ()   # a release: the severities every file holds
    dataset: object = None             # clean: the data set
    class_names: tuple | None = None   # names given to a release that names no classes

    def __len__(self) -> int:
        return len(self.labels)

    def clean_images(self, indices) -> np.ndarray | None:
        return self.dataset.arrays(indices)[0] if self.kind == CLEAN else None

    def shifted(self, indices):
        """A release: (corruption, severity) -> its images of `indices` (uint8 N×H×W×3); clean data: None."""
        if self.kind == CLEAN:
            return None

        def images(corruption: str, severity: int) -> np.ndarray:
            ds = self.open(corruption, severity)
            if not np.array_equal(ds.labels(), self.labels):
                raise UserError(f"{ds.file} (severity {severity}) labels its rows unlike "
                                f"{self.corruptions[0]}.npy; expected every file of {self.path} to hold the same "
                                "images in the same order")
            return ds.arrays(indices)[0]
        return images

    def open(self, corruption: str, severity: int) -> CorruptionDataset:
        ds = open_release(self.path, corruption, severity, self.class_names)
        if len(ds) != len(self.labels):
            raise UserError(f"{ds.file} holds {len(ds)} images per severity but {self.corruptions[0]}.npy holds "
                            f"{len(self.labels)}; expected every file of {self.path} to hold the same images")
        return ds

    def record(self) -> dict:
        """What run.json says about the input."""
        out = {"kind": self.kind, "path": str(self.path)}
        if self.kind == RELEASE:
            out.update(corruptions=list(self.corruptions), severities=list(self.severities))
        return out


def open_input(path, class_names=None, as_images: bool = False) -> EvalInput:
    """Clean images (any layout tttgui reads) or a corruption release (a folder, or one <corruption>.npy).
    as_images (--corruptions none): a release's rows are read as plain images (one file: all its rows)."""
    p = Path(path)
    if p.is_file() and p.suffix == ".npy" and p.name != "labels.npy" and not as_images:
        return _release(p.parent, (p.stem,), class_names)
    if p.is_dir() and is_release(p) and not as_images:
        return _release(p, tuple(list_corruptions(p)), class_names)
    ds = open_dataset(p, class_names=class_names)
    return EvalInput(CLEAN, p, list(ds.classes), np.asarray(ds.labels(), np.int64), dataset=ds)


def _release(root: Path, corruptions: tuple[str, ...], class_names) -> EvalInput:
    if not corruptions:
        raise UserError(f"corruption folder {root} has no <corruption>.npy files; expected <corruption>.npy "
                        "files and labels.npy")
    first = open_release(root, corruptions[0], None, class_names)
    ds = open_release(root, corruptions[0], first.severities[0], class_names)
    return EvalInput(RELEASE, root, list(ds.classes), np.asarray(ds.labels(), np.int64), corruptions,
                     tuple(first.severities), class_names=class_names)


def pick_corruptions(inp: EvalInput, asked: list[str], standard: list[str]) -> list[str]:
    """--corruptions for a release: files it holds. 'all': the standard ones it holds (else every file)."""
    if asked == ["all"]:
        held = [c for c in standard if c in inp.corruptions]
        return held or list(inp.corruptions)
    if "none" in asked:
        raise UserError(f"--corruptions {','.join(asked)}: none reads a release's rows as plain images, the others "
                        f"pick its files; expected either none alone or names from: {', '.join(inp.corruptions)}")
    missing = [c for c in asked if c not in inp.corruptions]
    if missing:
        raise UserError(f"corruption {missing[0]!r} is not in {inp.path}; expected names from: "
                        f"{', '.join(inp.corruptions)}")
    return asked


def check_severities(inp: EvalInput, severities) -> None:
    bad = [s for s in severities if s not in inp.severities]
    if inp.kind == RELEASE and bad:
        raise UserError(f"severity {bad[0]} is not in {inp.path} (it holds severities "
                        f"{', '.join(map(str, inp.severities))}); expected one of those")
