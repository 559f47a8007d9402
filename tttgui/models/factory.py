"""Build a TTTModel from a ModelSpec: the ResNet-26 or a timm backbone with the same heads."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from tttgui.errors import UserError, first_line
from tttgui.models.checkpoint import load_failure
from tttgui.models.model import HEADS, ModelSpec, TTTModel
from tttgui.models.resnet import build_resnet26, init_weights


def build_model(spec: ModelSpec) -> TTTModel:
    unknown = set(spec.heads) - set(HEADS)
    if unknown:
        raise UserError(f"unknown head(s) {sorted(unknown)}; expected some of {list(HEADS)}")
    if spec.arch == "resnet26":
        args = {"depth": 26, "width": 1, "norm": "gn", **spec.arch_args}
        trunk, main, rot, dim = build_resnet26(args["depth"], args["width"], args["norm"])
        model = TTTModel(spec, trunk, main, dim, rot)
        init_weights(model)
        return model
    if spec.arch.startswith("timm:"):
        return _build_timm(spec)
    raise UserError(f"unknown architecture {spec.arch!r}; expected 'resnet26' or 'timm:<model name>'")


def check_timm_name(name: str) -> None:
    """One line naming close matches for a name timm does not know."""
    import difflib

    import timm

    known = timm.list_models()
    base = name.split(".")[0]
    if base in known:
        return
    close = prefix_matches(base, known)[:3]
    close += [k for k in difflib.get_close_matches(base, known, n=5, cutoff=0.6) if k not in close][:5 - len(close)]
    raise UserError(f"unknown timm model {name!r}; expected a name from timm.list_models()"
                    + (f", e.g. {', '.join(close)}" if close else ", e.g. resnet18 or vit_small_patch16_224"))


def prefix_matches(typed: str, known) -> list[str]:
    """Names sharing the longest prefix any name shares with `typed` (a typo at the end: vit_tinyy -> vit_tiny_*),
    shortest first; none when that prefix is under half of what was typed (difflib's ratio misses these)."""
    import os

    longest = max((len(os.path.commonprefix([typed, k])) for k in known), default=0)
    if longest < max(3, len(typed) // 2):
        return []
    return sorted((k for k in known if k.startswith(typed[:longest])), key=lambda k: (len(k), k))


def with_heads(model: TTTModel, heads) -> TTTModel:
    """The model keeping only the self-supervised heads named (every other weight the same), or itself when it
    has no others. Built without fetching or reading backbone weights: they all come from the model."""
    keep = tuple(h for h in model.spec.heads if h in heads)
    if keep == model.spec.heads:
        return model
    spec = replace(model.spec, heads=keep)
    build = (replace(spec, arch_args={**spec.arch_args, "pretrained": False, "weights": None})
             if spec.arch.startswith("timm:") else spec)
    out = build_model(build)
    own = out.state_dict()
    out.load_state_dict({k: v for k, v in model.state_dict().items() if k in own})
    out.spec = spec
    device = next(model.parameters()).device
    return out.to(device).train(model.training)


def timm_spec(name: str, num_classes: int = 10, heads=("rotation",), weights: str | None = None,
              pretrained: bool = True) -> ModelSpec:
    """A spec for a timm backbone, with the input size and normalisation of its pretrained config."""
    import timm

    try:
        cfg = timm.get_pretrained_cfg(name)
    except Exception:  # timm raises several types for unknown names
        cfg = None
    if cfg is None:
        check_timm_name(name)
    size = cfg.input_size[-1] if cfg is not None else 224
    mean = tuple(cfg.mean) if cfg is not None else (0.485, 0.456, 0.406)
    std = tuple(cfg.std) if cfg is not None else (0.229, 0.224, 0.225)
    return ModelSpec(arch=f"timm:{name}", num_classes=num_classes, heads=tuple(heads),
                     arch_args={"pretrained": pretrained, "weights": weights},
                     input_size=size, mean=mean, std=std)


def _build_timm(spec: ModelSpec) -> TTTModel:
    import timm

    name = spec.arch[len("timm:"):]
    weights = spec.arch_args.get("weights")
    pretrained = bool(spec.arch_args.get("pretrained")) and not weights
    try:
        backbone = timm.create_model(name, pretrained=pretrained, num_classes=0, **_size_kwargs(name, spec))
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise UserError(f"unknown timm model {name!r}; expected a name from timm.list_models()") from None
        raise UserError(f"could not fetch pretrained weights for {name!r} ({first_line(exc)}); without "
                        f"network, pass a local weights file (.safetensors or .pth state dict)") from None
    except OSError as exc:
        raise UserError(f"could not fetch pretrained weights for {name!r} ({first_line(exc)}); without "
                        f"network, pass a local weights file (.safetensors or .pth state dict)") from None
    if weights:
        _load_backbone(backbone, _read_state_dict(Path(weights)), weights)
    dim = backbone.num_features
    return TTTModel(spec, backbone, nn.Identity(), dim, None)


def _size_kwargs(name: str, spec: ModelSpec) -> dict:
    """Models with a fixed input size (ViTs) are built for the spec's size, e.g. 32 px when trained on CIFAR."""
    import timm

    try:
        cfg = timm.get_pretrained_cfg(name)
    except Exception:
        cfg = None
    if cfg is not None and cfg.fixed_input_size and cfg.input_size[-1] != spec.input_size:
        return {"img_size": spec.input_size}
    return {}


def _load_backbone(backbone: nn.Module, state: dict, origin: str) -> None:
    """Load what matches; a file that matches nothing, or whose shared tensors have other shapes, is one line."""
    own = backbone.state_dict()
    shared = [k for k in state if k in own]
    wrong = [k for k in shared if tuple(state[k].shape) != tuple(own[k].shape)]
    if not shared or wrong:
        detail = (f"shape mismatch at {wrong[0]}: file {tuple(state[wrong[0]].shape)}, model "
                  f"{tuple(own[wrong[0]].shape)}" if wrong else "no tensor name in common")
        raise UserError(f"weights file {origin} does not fit this backbone ({detail}); expected weights of the "
                        "same timm model")
    backbone.load_state_dict({k: state[k] for k in shared}, strict=False)


def _read_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"weights file {path} not found; expected a .safetensors or .pth state dict")
    expected = "expected a .safetensors or .pth state dict"
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except Exception as exc:
            raise UserError(f"cannot read weights file {path} ({first_line(exc, 100)}); {expected}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"weights file {path} {load_failure(path, exc)}; {expected}") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state
