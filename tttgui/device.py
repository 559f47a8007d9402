"""Pick the torch device from a user's choice (auto / cpu / cuda / cuda:N / mps), and numerics settings."""
from __future__ import annotations

from contextlib import contextmanager

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
    if choice == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UserError("device 'mps' requested but Apple's Metal backend is not available here; expected "
                            "auto or cpu")
        return torch.device("mps")
    raise UserError(f"unknown device {choice!r}; expected auto, cpu, cuda, cuda:N or mps")


@contextmanager
def no_tf32():
    """Full float32 matmuls and convolutions inside (TF32, on by default on recent GPUs, differs from the CPU
    by ~1e-3): what corruptions use so their bytes match the CPU's."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def set_deterministic(seed: int) -> dict:
    """--deterministic: TF32 off, deterministic cuDNN and algorithms, every CUDA generator seeded. Returns what
    was set, for run.json and the model card."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)         # seeds the CUDA generators too
    return {"deterministic": True, "tf32": False, "cudnn_deterministic": True, "cudnn_benchmark": False}
