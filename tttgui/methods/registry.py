"""Methods by name. Each lives in its own module; the registry imports them lazily so a broken optional method
never stops the others from loading."""
from __future__ import annotations

import importlib

from tttgui.errors import UserError

# name -> "module:Class"
METHODS = {
    "source": "tttgui.methods.source:Source",
    "ttt": "tttgui.methods.ttt:TTT",
    "ttt++": "tttgui.methods.tttpp:TTTPlusPlus",
    "actmad": "tttgui.methods.actmad:ActMAD",
    "tent": "tttgui.methods.tent:Tent",
    "memo": "tttgui.methods.memo:MEMO",
    "aws": "tttgui.methods.aws:AWS",
    "aws-mean": "tttgui.methods.aws:AWSMean",
}


def method_names(protocol: str | None = None) -> list[str]:
    """Every method, or those that have a recipe for `protocol` (aws: the protocols of batches, not episodic)."""
    if protocol is None:
        return list(METHODS)
    return [name for name in METHODS if protocol in get_method(name).protocols]


def get_method(name: str):
    """The Method class registered under `name` (case-insensitive)."""
    key = (name or "").strip().lower()
    if key not in METHODS:
        raise UserError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    module, cls = METHODS[key].split(":")
    return getattr(importlib.import_module(module), cls)


def method_defaults(name: str, protocol: str = "episodic") -> dict:
    """The paper defaults of a method for a protocol: steps, lr, optimizer, momentum, ..., views, params."""
    cls = get_method(name)
    d = {"momentum": 0.0, "weight_decay": 0.0, "nesterov": False, **cls.defaults(protocol)}
    d["params"] = cls.default_param_words
    return d


def display_name(name: str, model=None) -> str:
    """What a user reads for a method on a model (GUI, tables): e.g. "Tent (GN affine)" on GroupNorm."""
    return get_method(name).display_name(model)


def describe(name: str) -> str:
    cls = get_method(name)
    return f"{cls.name}: {cls.summary} [{cls.source}]"
