"""Pick the torch device from a user's choice (auto / cpu / cuda / cuda:N)."""
from __future__ import annotations

import torch

from tttgui.errors import UserError


def resolve_device(choice: str = "auto") -> torch.device:
    choice = (choice or "auto").lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {choice!r} requested but no CUDA GPU is available; expected auto or cpu")
        dev = torch.device(choice)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"device {choice!r} does not exist; this machine has "
                            f"{torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise UserError(f"unknown device {choice!r}; expected auto, cpu, cuda or cuda:N")
