"""One checkpoint format: torch.save of plain containers, loaded with weights_only=True.

Keys: format, version, spec (ModelSpec dict), state_dict, classes, source_stats, meta (training command, data,
clean accuracy, ...). Architecture, normalisation and heads are therefore always known when loading.
"""
from __future__ import annotations

import functools
import os
import re
import zipfile
from pathlib import Path

import torch

from tttgui.atomic import atomic_path
from tttgui.errors import UserError
from tttgui.models.model import ModelSpec, TTTModel

FORMAT = "tttgui-checkpoint"
VERSION = 1
RESOURCES = Path(__file__).resolve().parents[2] / "resources"
DEFAULT_NAME = "resnet26_gn_cifar10.pt"
CORE_KEYS = ("format", "version", "spec", "state_dict", "classes", "source_stats", "meta")  # save_checkpoint's


def default_checkpoint_path() -> Path:
    """The shipped model: resources/ of a source checkout, or the copy installed beside the package."""
    for base in (RESOURCES, Path(__file__).resolve().parents[1] / "resources"):
        if (base / DEFAULT_NAME).is_file():
            return base / DEFAULT_NAME
    return RESOURCES / DEFAULT_NAME


def shipped_checkpoints() -> list[Path]:
    """Every model shipped in resources/ that can predict (the default first, then by name), for the window's
    model list; the self-supervised-only one is there for `tttgui train --init`."""
    base = default_checkpoint_path().parent
    found = sorted(base.glob("*.pt")) if base.is_dir() else []
    found = [p for p in found if _predicts(str(p), p.stat().st_mtime_ns)]
    return sorted(found, key=lambda p: (p.name != DEFAULT_NAME, p.name))


@functools.lru_cache(maxsize=32)
def _predicts(path: str, mtime_ns: int) -> bool:
    try:
        require_classifier(read_checkpoint(path), path)
    except UserError:
        return False
    return True


def save_checkpoint(path: str | os.PathLike, model: TTTModel, classes: list[str],
                    source_stats: dict | None = None, meta: dict | None = None,
                    extra: dict | None = None) -> Path:
    """Write atomically (temp file + rename) so an interrupted save never leaves a broken checkpoint."""
    payload = {
        "format": FORMAT, "version": VERSION, "spec": model.spec.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "classes": [str(c) for c in classes], "source_stats": _cpu(source_stats or {}),
        "meta": _plain(dict(meta or {})),
    }
    payload.update(extra or {})
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw payload, validated; raises UserError with one line for anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; expected a tttgui checkpoint (.pt) file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"checkpoint {path} {load_failure(path, exc)}; expected a file written by tttgui "
                        "train") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not a tttgui checkpoint; expected a file written by tttgui "
                        "train (a dict with format='tttgui-checkpoint')")
    if payload.get("version", 0) > VERSION:
        raise UserError(f"checkpoint {path} has format version {payload['version']}; this tttgui reads up "
                        f"to version {VERSION}")
    for key in ("spec", "state_dict", "classes"):
        if key not in payload:
            raise UserError(f"checkpoint {path} lacks '{key}'; expected a complete tttgui checkpoint")
    return payload


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[TTTModel, dict]:
    """Rebuild the model of a checkpoint; returns (model in eval mode on device, payload)."""
    from tttgui.models.factory import build_model

    payload = read_checkpoint(path)
    spec = ModelSpec.from_dict(payload["spec"])
    if spec.arch.startswith("timm:"):
        # The state dict holds the backbone weights: never download them again.
        spec = ModelSpec.from_dict({**spec.to_dict(), "arch_args": {**spec.arch_args, "pretrained": False,
                                                                      "weights": None}})
    model = build_model(spec)
    if len(payload["classes"]) != spec.num_classes:
        raise UserError(f"checkpoint {path} names {len(payload['classes'])} classes but its classifier has "
                        f"{spec.num_classes} outputs")
    load_state(model, payload["state_dict"], str(path))
    bad = _first_non_finite(payload.get("source_stats") or {}, "source_stats")
    if bad:     # ActMAD/TTT++ would align to nan and every step would diverge
        raise UserError(f"checkpoint {path} has non-finite source statistics ({bad}); expected finite ones: "
                        "recompute them with tttgui stats --checkpoint FILE --data TRAIN --out NEW.pt")
    return model.to(device).eval(), payload


def require_classifier(payload: dict, path) -> None:
    """Predicting needs a trained classifier: a self-supervised checkpoint (`--finetune none`) has a random one,
    and its errors would be chance, not a result."""
    if (payload.get("meta") or {}).get("finetune") == "none":
        raise UserError(f"checkpoint {path} is a self-supervised model whose classifier was never trained "
                        "(tttgui train --finetune none); expected a fine-tuned checkpoint, or its prototype "
                        f"classifier: tttgui train --labeled DIR --init {path} --ssl-epochs 0 --finetune "
                        "prototypes --out NEW.pt")


def _first_non_finite(obj, where: str) -> str | None:
    if torch.is_tensor(obj):
        return where if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        bad = _first_non_finite(v, f"{where}.{k}")
        if bad:
            return bad
    return None


def load_failure(path: Path, exc: Exception) -> str:
    """Why torch.load failed, in plain words judged from the file itself (torch's own text is long and
    generic: "failed finding central directory", a bare KeyError, a paragraph on weights_only)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if not head:
        return "is empty (0 bytes)"
    banned = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if banned:
        return (f"contains non-tensor objects that are not allowed ({banned.group(1)}: only tensors and plain "
                "containers load safely)")
    if head.startswith(b"PK"):   # torch.save's zip format
        if not zipfile.is_zipfile(path):
            return "is truncated (its zip archive has no end record)"
        return "is a damaged zip archive or one torch.save did not write"
    if head[:1] != b"\x80":      # pickles from protocol 2 on (torch's legacy format too) start so
        return f"is not a zip/pickle file (it starts with {head!r})"
    if isinstance(exc, EOFError):
        return "is truncated (its pickle data ends early)"
    return "is a pickle that torch.save did not write"


def load_state(model: TTTModel, state: dict, origin: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"shape mismatch at {k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}")
        raise UserError(f"checkpoint {origin} does not match architecture {model.spec.arch}: "
                        + "; ".join(parts))
    for k, v in state.items():   # a diverged training run saves fine but predicts class 0 for everything
        if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            raise UserError(f"checkpoint {origin} has non-finite weights: {k} holds {bad} nan/inf value(s) of "
                            f"{v.numel()}; expected finite weights (its training probably diverged)")
    model.load_state_dict(state)


def _plain(obj):
    """Only builtin types survive weights_only loading: turn numpy scalars, str subclasses etc. into them."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, str):
        return str(obj)
    if hasattr(obj, "item") and not isinstance(obj, (int, float)):
        return obj.item()
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    return str(obj)


def _cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj
