"""The CLI's progress bar on stderr: tqdm behind the small interface the commands use (the GUI has its own
widgets). tqdm comes with timm, so this adds no dependency."""
from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, desc: str = "", stream=None, enabled: bool = True, every: float = 0.2):
        self.bar = tqdm(total=max(int(total), 1), desc=desc, file=stream or sys.stderr, disable=not enabled,
                        mininterval=every, dynamic_ncols=True, leave=True)

    @property
    def n(self) -> int:
        return self.bar.n

    def update(self, k: int = 1, postfix: str | None = None) -> None:
        if postfix is not None:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(k)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
