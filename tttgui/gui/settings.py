"""Persistent settings: an ini file with one typed defaults table (unknown keys are a programming error)."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

DEFAULTS = {
    "geometry": b"",
    "window_state": b"",
    "last_data": "",
    "last_dir": "",
    "recent_checkpoints": [],
    "method": {},
    "corruption": "gaussian_noise",
    "severity": 5,
    "run_steps": 10,
    "device": "auto",
}
MAX_RECENT = 8


def default_path() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppConfigLocation)
    return Path(base or Path.home() / ".config" / "tttgui") / "tttgui.ini"


class Settings:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        self._q = QSettings(str(self.path), QSettings.Format.IniFormat)

    def get(self, key: str):
        default = DEFAULTS[key]
        raw = self._q.value(key, None)
        if raw is None:
            return default
        try:
            if isinstance(default, (list, dict)):
                value = json.loads(raw)
                return value if isinstance(value, type(default)) else default
            if isinstance(default, bytes):
                return bytes(raw) if not isinstance(raw, str) else default
            return type(default)(raw)
        except (TypeError, ValueError):
            return default

    def set(self, key: str, value) -> None:
        default = DEFAULTS[key]
        if isinstance(default, (list, dict)):
            value = json.dumps(value)
        self._q.setValue(key, value)

    def add_recent(self, path: str) -> list[str]:
        items = [p for p in self.get("recent_checkpoints") if p != path]
        items = [path, *items][:MAX_RECENT]
        self.set("recent_checkpoints", items)
        return items

    def drop_recent(self, path: str) -> list[str]:
        items = [p for p in self.get("recent_checkpoints") if p != path]
        self.set("recent_checkpoints", items)
        return items

    def sync(self) -> None:
        self._q.sync()
