"""Checks of command-line values made before any work starts: each failure is one line (UserError)."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from tttgui.errors import UserError

SEED_MAX = 2 ** 64 - 1     # what torch.manual_seed takes (numpy's generators take any non-negative int)


def threads(n: int | None) -> None:
    """--threads: None means torch's default; 0 and negatives are refused (0 was silently ignored)."""
    if n is not None and n < 1:
        raise UserError(f"--threads {n} is invalid; expected 1 or more CPU threads")


def seed(value: int) -> None:
    if not 0 <= value <= SEED_MAX:
        raise UserError(f"--seed {value} is out of range; expected a whole number 0..2**64-1")


def at_least(option: str, value, low) -> None:
    if value is not None and value < low:
        raise UserError(f"{option} {value} is invalid; expected {low} or more")


def positive(option: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserError(f"{option} {value} is invalid; expected a positive number")


def non_negative(option: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise UserError(f"{option} {value} is invalid; expected 0 or a positive number")


def input_path(option: str, path: str | None) -> None:
    if path is not None and not Path(path).exists():
        raise UserError(f"{option} {path} not found; expected an existing file or folder")


def shipped(path: Path) -> bool:
    """True for the checkpoints and cards shipped in resources/ (never written over without --in-place)."""
    from tttgui.models.checkpoint import RESOURCES

    try:
        return path.resolve().parent == RESOURCES.resolve() and path.suffix in (".pt", ".md")
    except OSError:
        return False


def checkpoint_out(option: str, path: str) -> Path:
    """An output checkpoint: a .pt file (its card is the .md beside it, so the two never collide) in a folder
    that exists or can be made, and that this process can write."""
    out = Path(path)
    if out.suffix != ".pt":
        raise UserError(f"{option} {path} must end in .pt; expected a checkpoint file name (its model card is "
                        f"written beside it as {out.with_suffix('.md').name})")
    if out.is_dir():
        raise UserError(f"{option} {path} is a folder; expected a checkpoint file name ending in .pt")
    writable_folder(option, out.parent)
    return out


def writable_folder(option: str, folder: Path) -> None:
    """The folder exists (or its nearest existing parent does) and can be written."""
    output_folder(option, folder, "expected a folder to write into")


def output_folder(option: str, out: Path, expected: str) -> None:
    """An output folder that can take results now (it is made only when they are written), checked before any
    work so that hours of results are never lost at the end: not a file, not under a file, writable. `expected`
    ends each message."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{option} {out} is a file; {expected}")
    base = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not base.is_dir():
        raise UserError(f"{option} {out} lies under the file {base}; {expected}")
    why = unwritable(base)
    if why:
        raise UserError(f"{option} {out} is not writable ({why} in {base}); {expected}")


def unwritable(folder: Path) -> str | None:
    """Why a file cannot be made in `folder`, or None. Permission bits first; then a real temporary file, since
    root passes every access check and a read-only mount only shows on writing."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__
    return None


def cache_dir(path: str | None) -> None:
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"--cache-dir {path} is a file; expected a folder (created if missing)")
    if path is not None:
        writable_folder("--cache-dir", Path(path))

