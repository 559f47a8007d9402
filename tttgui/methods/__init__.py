"""Test-time adaptation methods (one module each), looked up by name.

    from tttgui.methods import method_names, get_method, method_defaults, MethodConfig, Adapter
"""
from tttgui.methods.base import MethodConfig, Recipe, Method, PARAM_CHOICES, PROTOCOLS, OPTIMIZERS
from tttgui.methods.registry import METHODS, method_names, get_method, method_defaults, describe, display_name
from tttgui.methods.adapter import DIVERGED, Adapter, Update, decide, image_seed

__all__ = ["MethodConfig", "Recipe", "Method", "METHODS", "method_names", "get_method", "method_defaults",
           "describe", "display_name", "Adapter", "Update", "DIVERGED", "decide", "image_seed", "PARAM_CHOICES",
           "PROTOCOLS", "OPTIMIZERS"]
