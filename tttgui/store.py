"""Finished cells of an evaluation on disk, so a run can stop at any moment and continue.

OUT/cells/config.json records what the run computes (configuration, checkpoint hash, images); every finished
cell (corruption × severity × method) is OUT/cells/<corruption>-<severity>-<method>.csv, written atomically
the moment it finishes, so a killed run loses at most the cells in flight. `--resume` reads the finished cells
back instead of computing them, after checking that the configuration is the one they were made with.
"""
from __future__ import annotations

import json
from pathlib import Path

from tttgui.errors import UserError
from tttgui.results import IMAGE_COLUMNS, ImageRow, read_rows, write_csv, write_json

CONFIG = "config.json"


class CellStore:
    def __init__(self, out_dir):
        self.out = Path(out_dir)
        self.dir = self.out / "cells"

    def path(self, key) -> Path:
        corruption, severity, method = key
        return self.dir / f"{corruption}-{severity}-{method}.csv"

    def finished(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.csv") if not p.name.startswith("."))

    def start(self, fingerprint: dict, resume: bool) -> int:
        """Open the store for a run of `fingerprint`; returns how many cells are already finished. Without
        resume, cells of a finished earlier run are cleared (a rerun replaces it); an unfinished one is kept
        and refused, so hours of work are never thrown away by a repeated command."""
        old = self._read_config()
        fingerprint = as_stored(fingerprint)
        done = self.finished()
        if old is not None and resume:
            if old != fingerprint:
                raise UserError(f"--resume: {differs(old, fingerprint)} in the run in {self.out}; expected the "
                                "options of the run being continued (or another --out for a new run)")
            return len(done)
        if done and not resume and not self._complete():
            raise UserError(f"--out {self.out} holds an unfinished run ({len(done)} finished cells); expected "
                            "--resume to continue it, or another --out for a new run")
        for p in done:
            p.unlink()
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.dir / CONFIG, fingerprint)
        return 0

    def load(self, key) -> list[ImageRow] | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return read_rows(p)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"finished cell {p} cannot be read ({exc.__class__.__name__}); expected the CSV "
                            "tttgui eval writes (delete the file to compute that cell again)") from None

    def save(self, key, rows: list[ImageRow]) -> None:
        write_csv(self.path(key), IMAGE_COLUMNS, rows)

    def share(self, key, order):
        """The positions of a cell this process runs: all of them (a rank of tttgui.distributed runs a part)."""
        return order

    def mismatch(self, fingerprint: dict) -> str | None:
        """How the stored cells' fingerprint differs from `fingerprint`, in words; None when it is the same or
        there is no run here yet."""
        old, new = self._read_config(), as_stored(fingerprint)
        return None if old is None or old == new else differs(old, new)

    def _read_config(self) -> dict | None:
        try:
            return json.loads((self.dir / CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _complete(self) -> bool:
        try:
            return bool(json.loads((self.out / "run.json").read_text(encoding="utf-8")).get("complete"))
        except (OSError, ValueError, AttributeError):
            return False


def as_stored(fingerprint: dict) -> dict:
    """A fingerprint as config.json holds it (tuples become lists, keys sorted)."""
    return json.loads(json.dumps(fingerprint, sort_keys=True, default=str))


def differs(old: dict, new: dict, where: str = "") -> str:
    """The first setting that changed, in words; a nested one by its path ("recipes ttt lr is 0.005 now but was
    0.001"), and the settings typed before those resolved from them (recipes) so the option the user changed is
    the one named."""
    keys = sorted(set(old) | set(new), key=lambda k: (k == "recipes", k))
    for key in keys:
        a, b = old.get(key), new.get(key)
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict):
                return differs(a, b, f"{where}{key} ")
            return f"{where}{key} is {_short(b)} now but was {_short(a)}"
    return "the configuration differs"


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def sha256_file(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest(values) -> str:
    """A short hash of integers (image indices)."""
    import hashlib

    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.int64).tobytes()).hexdigest()[:16]
