"""What a batch evaluation reads (no Qt): the chosen images of the window's data set, read one by one so that
an unreadable file is skipped and listed instead of ending the batch; of a corruption release, the rows of
each chosen corruption and severity as they are (never corrupted again)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class BatchJob:
    images: np.ndarray | None          # uint8 N×H×W×3 clean images (None: a release, see shifted)
    labels: np.ndarray
    indices: np.ndarray                # data-set indices of the images kept
    skipped: list[tuple[int, str]] = field(default_factory=list)   # (index, one line) of unreadable images
    shifted: Callable | None = None    # a release: (corruption, severity) -> its rows of `indices`


@dataclass
class BatchRun:
    """What the worker hands back: the engine's result, the images it skipped, and how many it was asked for
    per cell (a cell with fewer rows is partial: the batch was cancelled during it)."""
    result: object                     # tttgui.evaluation.EvalResult
    skipped: list[tuple[int, str]]
    asked: int
    cancelled: bool = False


def is_release(dataset) -> bool:
    return getattr(dataset, "corruption", None) is not None and hasattr(dataset, "available")


def release_block(dataset, corruption: str, severity: int):
    from tttgui.data.corrupted import CorruptionDataset

    return CorruptionDataset(dataset.root, corruption, severity, classes=list(dataset.classes))


def prepare(dataset, indices, cfg, should_stop: Callable[[], bool] = lambda: False) -> BatchJob:
    indices = np.asarray(indices, np.int64)
    if is_release(dataset):
        first = release_block(dataset, cfg.corruptions[0], cfg.severities[0])
        return BatchJob(None, first.labels()[indices], indices,
                        shifted=lambda c, s: release_block(dataset, c, s).arrays(indices)[0])
    from tttgui.errors import UserError

    images, labels, kept, skipped = [], [], [], []
    for i in indices:
        if should_stop():
            break
        try:
            image, label, _ = dataset[int(i)]
        except UserError as exc:     # a corrupt or truncated file: listed, the batch goes on
            skipped.append((int(i), str(exc)))
            continue
        if images and image.shape != images[0].shape:
            skipped.append((int(i), f"image {int(i)} is {image.shape[1]}x{image.shape[0]}; expected "
                                    f"{images[0].shape[1]}x{images[0].shape[0]} like the others"))
            continue
        images.append(image)
        labels.append(label)
        kept.append(int(i))
    stack = np.stack(images) if images else None
    return BatchJob(stack, np.asarray(labels, np.int64), np.asarray(kept, np.int64), skipped)


def skipped_record(skipped) -> list[dict]:
    """run.json's list of the images a batch could not read."""
    return [{"index": i, "reason": why} for i, why in skipped]
