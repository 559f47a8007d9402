"""Atomic file writes: a temporary file beside the target, then one rename.

A crash, a full disk or Ctrl-C never leaves a half-written file under the real name, and two processes that
write the same target never share a temporary file.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path, keep_suffix: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; rename it onto `path` when the block ends without error,
    remove it otherwise. The temporary name keeps the suffix, for writers that go by it (np.savez, PNG);
    keep_suffix=False ends it in .tmp instead, so a file left by a killed process never looks like data."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp = path.with_name(f".{path.stem}.{token}.tmp{path.suffix}" if keep_suffix else f".{path.name}.{token}.tmp")
    # created here so it gets the umask's usual mode (tempfile.mkstemp makes 0600 files)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)   # already gone after a successful rename


def write_bytes(path, data: bytes) -> Path:
    with atomic_path(path, keep_suffix=False) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    with atomic_path(path, keep_suffix=False) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
