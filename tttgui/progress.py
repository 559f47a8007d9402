"""A small text progress bar on stderr (the CLI's only one; the GUI uses its own widgets)."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, desc: str = "", stream=None, enabled: bool = True, every: float = 0.2):
        self.total, self.desc, self.n = max(int(total), 1), desc, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.every = every
        self.start = self._last = time.perf_counter()
        self.postfix = ""

    def update(self, k: int = 1, postfix: str | None = None) -> None:
        self.n += k
        if postfix is not None:
            self.postfix = postfix
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self.every or self.n >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(self.n / self.total, 1.0)
        bar = "#" * int(frac * 24)
        rate = self.n / max(now - self.start, 1e-9)
        eta = (self.total - self.n) / rate if rate > 0 else 0.0
        self.stream.write(f"\r{self.desc} [{bar:<24}] {self.n}/{self.total} {rate:.1f}/s eta {eta:.0f}s "
                          f"{self.postfix}\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
