"""The labeled and unlabeled images a training run reads: decoded once (cached as .npz), refused when too large,
and the seeded, class-balanced label draws (--label-fraction, --labels-per-class)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from tttgui.atomic import atomic_path
from tttgui.errors import UserError


def load_images(path: str, limit: int | None, cache_dir: str | None, split: str = "train"):
    """Decode a data set once into uint8 arrays, cached as .npz keyed by what was decoded. `split` picks the
    split of a folder that has several (train/ and test/, a CIFAR python folder): training reads "train", never
    the images evaluation corrupts; --test reads "test"."""
    from tttgui.data import open_dataset
    from tttgui.data.subset import random_subset

    ds = open_dataset(path, split=split)
    check_size(ds, path, limit)
    if limit is not None and limit < len(ds):   # the data layer's seeded subset, as everywhere else
        images, labels = random_subset(ds, limit, seed=0).arrays()
        return images, labels, ds.classes
    cache = None
    if cache_dir:
        cache = Path(cache_dir) / f"arrays-{content_key(ds, path, split)}.npz"
        if cache.is_file():
            z = np.load(cache)
            return z["images"], z["labels"], ds.classes
    images, labels = ds.arrays()
    if cache is not None:
        with atomic_path(cache) as tmp:
            np.savez(tmp, images=images, labels=labels)
    return images, labels, ds.classes


def content_key(ds, path: str, split: str) -> str:
    """What a cache of these decoded arrays depends on: the data set's files with their class, size and time (an
    image moved between class folders or replaced in place changes it; the top folder's time would not), or for a
    data set without files its path, split, length and the folder's time."""
    h = hashlib.sha1(os.fsencode(f"{Path(path).resolve()}|{split}|{len(ds)}|{list(ds.classes)}"))
    files = getattr(ds, "files", None)
    if files is not None:
        for f, t in zip(files, getattr(ds, "targets", [])):
            st = os.stat(f)
            h.update(os.fsencode(f"{f}|{int(t)}|{st.st_size}|{st.st_mtime_ns}\n"))
    else:
        h.update(os.fsencode(str(os.path.getmtime(path))))
    return h.hexdigest()[:16]


MAX_SIDE = 512                 # larger images are not what these CIFAR-sized networks train on
MAX_BYTES = 8 * 2 ** 30        # decoded uint8 arrays above this would not fit beside training in memory


def check_size(ds, path: str, limit: int | None) -> None:
    """Refuse, before decoding everything, images too large to train on (one line instead of the OOM killer)."""
    if len(ds) == 0:
        raise UserError(f"data {path} holds no images; expected a folder of <class>/<image> files")
    h, w = ds[0][0].shape[:2]
    n = len(ds) if limit is None else min(limit, len(ds))
    if max(h, w) > MAX_SIDE or n * h * w * 3 > MAX_BYTES:
        raise UserError(f"images of {path} are {w}x{h} ({n} of them, {n * h * w * 3 / 2 ** 30:.1f} GiB decoded); "
                        f"expected at most {MAX_SIDE}x{MAX_SIDE} and {MAX_BYTES // 2 ** 30} GiB in all: resize "
                        "them first (tttgui trains CIFAR-sized networks)")


def per_class(labels: np.ndarray, n: int, seed: int, names=None, note: str = "") -> np.ndarray:
    """Indices of n images of every class, drawn by seed (class-balanced few-label fine-tuning); `names` name the
    classes in the refusal, `note` says why a class may be short (e.g. --limit)."""
    if n < 1:
        raise UserError(f"--labels-per-class {n} is invalid; expected 1 or more")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < n:
            name = repr(names[c]) if names is not None and 0 <= c < len(names) else str(c)
            raise UserError(f"class {name} has only {len(idx)} labeled images{note}; expected --labels-per-class "
                            f"{n} or fewer")
        keep.append(rng.permutation(idx)[:n])
    return np.sort(np.concatenate(keep))


def stratified_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of `fraction` of the images of every class, drawn by seed."""
    if not 0 < fraction <= 1:
        raise UserError(f"--label-fraction {fraction} is out of range; expected 0 < f <= 1")
    if fraction == 1:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(rng.permutation(idx)[:max(1, int(round(fraction * len(idx))))])
    return np.sort(np.concatenate(keep))
