"""What every corruption function receives besides the images and the severity."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Context:
    rng: np.random.Generator  # all random draws come from here (on the CPU, so every device gets the same bytes)
    device: torch.device
    large: bool  # True: the ImageNet-C parameters (images wider or taller than 64 px)
    frost_dir: str | None = None

    def tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)


def pick(table_small, table_large, severity: int, ctx: Context):
    return (table_large if ctx.large else table_small)[severity - 1]
