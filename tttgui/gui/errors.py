"""Turn any exception into one line for the status bar and a dialog (never a traceback for the user)."""
from __future__ import annotations

from tttgui.errors import UserError, first_line as _first

LIMIT = 300


def one_line(exc: BaseException, context: str = "") -> str:
    if isinstance(exc, UserError):
        return _first(exc)
    name = type(exc).__name__
    if isinstance(exc, MemoryError) or "OutOfMemory" in name or "out of memory" in str(exc).lower():
        text = "out of memory; try fewer views, a smaller model or the CPU"
    elif isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        text = f"{exc.strerror or name}: {exc.filename}"
    else:
        text = f"{name}: {_first(exc)}" if _first(exc) != name else name
    text = f"{context}: {text}" if context else text
    return text if len(text) <= LIMIT else text[:LIMIT].rsplit(" ", 1)[0] + " …"   # never cut mid-word
