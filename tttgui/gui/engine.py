"""The GUI's view of the core engine (no Qt here): names and defaults for the panels, the session factory."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from tttgui.corruptions import CORRUPTIONS, corrupt, describe
from tttgui.methods import MethodConfig, PARAM_CHOICES, PROTOCOLS, OPTIMIZERS, get_method
from tttgui.methods import describe as describe_method, method_defaults, method_names as _registered

ORDER = ("ttt", "ttt++", "tent", "memo", "actmad", "aws", "aws-mean", "source")   # the order shown in the Method panel
OPTIMIZER_CHOICES = ("default",) + tuple(OPTIMIZERS)
__all__ = ["PARAM_CHOICES", "PROTOCOLS", "OPTIMIZER_CHOICES", "describe_method", "method_names",
           "corruption_names", "describe_corruption", "apply_corruption", "make_config", "make_session",
           "config_dict", "default_steps", "method_adapts", "needs_batch", "preload"]


def method_names() -> list[str]:
    names = _registered()
    return [m for m in ORDER if m in names] + [m for m in names if m not in ORDER]


def corruption_names() -> list[str]:
    return ["none", *CORRUPTIONS]


def describe_corruption(name: str, severity: int = 5) -> str:
    return "No corruption: the clean image." if name == "none" else describe(name, int(severity))


def apply_corruption(image: np.ndarray, name: str, severity: int, seed: int = 0,
                     frost_dir: str | None = None) -> np.ndarray:
    """Corrupt one uint8 HWC image; 'none' returns it unchanged."""
    if name == "none":
        return image
    return corrupt(image, name, int(severity), seed=seed, frost_dir=frost_dir)


def make_config(method: str, steps=None, lr=None, optimizer=None, views=None, params=None,
                protocol: str = "episodic", seed: int = 0) -> MethodConfig:
    """None fields keep the paper's default."""
    return MethodConfig(method=method, steps=steps, lr=lr, optimizer=optimizer, views=views, params=params,
                        protocol=protocol, seed=seed)


def make_session(model, source_stats, config, device):
    from tttgui.session import Session

    return Session(model, source_stats, config, device)


def config_dict(config: MethodConfig) -> dict:
    return asdict(config)


def needs_batch(method: str) -> bool:
    """True for a method that learns from the pairs of a batch (aws): one image cannot step it."""
    return get_method(method).min_batch > 1


def method_adapts(method: str) -> bool:
    """False for a method that trains nothing (`source`): no loss, no gradients, no views."""
    return bool(get_method(method).adapts)


def default_steps(method: str, protocol: str) -> int:
    """The paper's steps per image for a method and protocol; 0 (none) for a protocol it has no recipe for (aws
    on one image: Step and Run say where it runs instead)."""
    if protocol not in get_method(method).protocols:
        return 0
    return int(method_defaults(method, protocol)["steps"])


def preload() -> None:
    """Import, on the GUI thread, what the worker would otherwise import lazily on its own thread.

    Importing a module from a non-GUI thread while PySide6's import hook inspects modules can crash the
    process (seen with torch.optim's lazy import of torch._dynamo on the first optimizer). So: create one
    optimizer of each kind and load the session and every method module here, before the worker runs.
    """
    global _PRELOADED
    if _PRELOADED:
        return
    import importlib

    import torch

    importlib.import_module("tttgui.session")
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.1)
    for name in method_names():
        get_method(name)
    _PRELOADED = True


_PRELOADED = False
