"""The GUI's view of the core engine (no Qt here): method names, corruptions, the session factory.

The core pieces (sessions, methods, corruptions) are written beside the GUI; this module imports them lazily
so the window still opens, with fewer choices, when one is missing from an installation.
"""
from __future__ import annotations

import numpy as np

# Fallback names when the method registry cannot be read; the order is the one shown in the Method panel.
KNOWN_METHODS = ("ttt", "ttt++", "tent", "memo", "actmad", "source")
PARAM_CHOICES = ("default", "all", "trunk", "norm")
OPTIMIZER_CHOICES = ("default", "sgd", "adam", "adamw")
PROTOCOLS = ("episodic", "online")


def method_names() -> list[str]:
    try:
        from tttgui import methods
    except ImportError:
        return list(KNOWN_METHODS)
    for attr in ("METHODS", "REGISTRY", "registry"):
        reg = getattr(methods, attr, None)
        if isinstance(reg, dict) and reg:
            names = list(reg)
            ordered = [m for m in KNOWN_METHODS if m in names]
            return ordered + [m for m in names if m not in ordered]
    names = getattr(methods, "method_names", None)
    if callable(names):
        return list(names())
    return list(KNOWN_METHODS)


def corruption_names() -> list[str]:
    """'none' first, then every corruption the core offers (empty list when the module is missing)."""
    try:
        from tttgui.corruptions import CORRUPTIONS
    except ImportError:
        return ["none"]
    return ["none"] + [c for c in CORRUPTIONS if c != "none"]


def describe_corruption(name: str, severity: int = 5) -> str:
    if name == "none":
        return "No corruption: the clean image."
    try:
        from tttgui.corruptions import describe
        return str(describe(name, int(severity)))
    except Exception:  # description is cosmetic; never break the panel for it
        return name


def apply_corruption(image: np.ndarray, name: str, severity: int, seed: int = 0,
                     frost_dir: str | None = None) -> np.ndarray:
    """Corrupt one uint8 HWC image; 'none' returns it unchanged."""
    if name == "none":
        return image
    from tttgui.corruptions import corrupt

    out = corrupt(image[None], name, int(severity), seed=seed, frost_dir=frost_dir)
    return np.asarray(out)[0]


def make_config(method: str, steps=None, lr=None, optimizer=None, views=None, params=None,
                protocol: str = "episodic", seed: int = 0):
    """A MethodConfig of the core; None fields keep the paper's default."""
    try:
        from tttgui.session import MethodConfig
    except ImportError:
        from tttgui.methods.base import MethodConfig

    return MethodConfig(method=method, steps=steps, lr=lr, optimizer=optimizer, views=views, params=params,
                        protocol=protocol, seed=seed)


def make_session(model, source_stats, config, device):
    from tttgui.session import Session

    return Session(model, source_stats, config, device)


def config_dict(config) -> dict:
    from dataclasses import asdict, is_dataclass

    return asdict(config) if is_dataclass(config) else dict(vars(config))


def default_steps(method: str, protocol: str) -> int:
    """The paper's steps per image for a method and protocol (0 when unknown)."""
    try:
        from tttgui.methods import method_defaults
        return int(method_defaults(method, protocol)["steps"])
    except Exception:  # an unknown or unloadable method has no default to offer
        return 0


def describe_method(name: str) -> str:
    try:
        from tttgui.methods import describe
        return describe(name)
    except Exception:  # the tooltip is cosmetic
        return name


def preload() -> None:
    """Import, on the GUI thread, what the worker would otherwise import lazily on its own thread.

    Importing a module from a non-GUI thread while PySide6's import hook inspects modules can crash the
    process (seen with torch.optim's lazy import of torch._dynamo on the first optimizer). So: create one
    optimizer and load every method module here, once, before the worker runs anything.
    """
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.1)
    try:
        import tttgui.session  # noqa: F401
        from tttgui.methods import get_method, method_names as names
        for name in names():
            try:
                get_method(name)
            except Exception:  # a method that fails to import reports itself when chosen
                pass
    except ImportError:
        pass
