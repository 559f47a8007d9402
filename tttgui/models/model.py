"""The model every method adapts: shared trunk, classifier branch, self-supervised heads.

Images enter as float RGB in [0, 1], NCHW; the model normalises them itself with the mean/std recorded in
its spec, so callers never need to know a checkpoint's normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field, asdict

import torch
from torch import nn

from tttgui.errors import UserError

HEADS = ("rotation", "contrastive")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model's architecture (stored in each checkpoint)."""

    arch: str = "resnet26"            # "resnet26" or "timm:<model name>"
    num_classes: int = 10
    heads: tuple[str, ...] = ("rotation",)
    arch_args: dict = field(default_factory=lambda: {"depth": 26, "width": 1, "norm": "gn"})
    input_size: int = 32
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    proj_hidden: int = 256
    proj_dim: int = 128
    classifier: str = "linear"        # "linear", or "cosine": prototypes (Han et al. 2025's classifier)
    cosine_scale: float = 10.0        # sigma of the cosine classifier's softmax(sigma * cos)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["heads"] = list(self.heads)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for key in ("heads", "mean", "std"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


class ProjectionHead(nn.Module):
    """SimCLR-style MLP on pooled features (TTT++'s self-supervised head), L2-normalised output."""

    def __init__(self, dim: int, hidden: int, out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))

    def forward(self, f):
        return nn.functional.normalize(self.net(f), dim=1)


class CosineClassifier(nn.Module):
    """logits = scale * cos(f, w_c): a prototype classifier (weight row c = the prototype of class c)."""

    def __init__(self, dim: int, classes: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(classes, dim))
        self.scale = float(scale)

    def forward(self, f):
        return self.scale * nn.functional.normalize(f, dim=1) @ nn.functional.normalize(self.weight, dim=1).t()


class TTTModel(nn.Module):
    """trunk -> main (pooled features) -> fc; rotation: rot_body (own layer3 copy, or main) -> rot_fc."""

    def __init__(self, spec: ModelSpec, trunk: nn.Module, main: nn.Module, feat_dim: int,
                 rot_body: nn.Module | None):
        super().__init__()
        self.spec = spec
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.trunk = trunk
        self.main = main
        if spec.classifier not in ("linear", "cosine"):
            raise UserError(f"unknown classifier {spec.classifier!r}; expected linear or cosine")
        self.fc = (CosineClassifier(feat_dim, spec.num_classes, spec.cosine_scale) if spec.classifier == "cosine"
                   else nn.Linear(feat_dim, spec.num_classes))
        self.feat_dim = feat_dim
        self.rot_body = rot_body if "rotation" in spec.heads else None
        self.rot_fc = nn.Linear(feat_dim, 4) if "rotation" in spec.heads else None
        self.projector = (ProjectionHead(feat_dim, spec.proj_hidden, spec.proj_dim)
                          if "contrastive" in spec.heads else None)

    # -- pieces -------------------------------------------------------------------------------------
    def shared(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk((x - self.mean) / self.std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(self.shared(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def rotation_logits_from_shared(self, h: torch.Tensor) -> torch.Tensor:
        if self.rot_fc is None:
            raise UserError("this model has no rotation head; expected a checkpoint trained with it")
        body = self.rot_body if self.rot_body is not None else self.main
        return self.rot_fc(body(h))

    def rotation_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.rotation_logits_from_shared(self.shared(x))

    def project(self, f: torch.Tensor) -> torch.Tensor:
        if self.projector is None:
            raise UserError("this model has no contrastive head; expected a checkpoint trained with it")
        return self.projector(f)

    # -- parameter groups -----------------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"trunk": list(self.trunk.parameters()), "classifier": list(self.main.parameters())
                  + list(self.fc.parameters())}
        if self.rot_fc is not None:
            body = list(self.rot_body.parameters()) if self.rot_body is not None else []
            groups["rotation"] = body + list(self.rot_fc.parameters())
        if self.projector is not None:
            groups["contrastive"] = list(self.projector.parameters())
        return groups

    def norm_layers(self) -> list[tuple[str, nn.Module]]:
        """Norm layers of the classification path (trunk + main branch), in forward order."""
        kinds = (nn.GroupNorm, nn.BatchNorm2d, nn.LayerNorm, nn.BatchNorm1d)
        out = []
        for prefix, part in (("trunk", self.trunk), ("main", self.main)):
            out += [(f"{prefix}.{n}", m) for n, m in part.named_modules() if isinstance(m, kinds)]
        return out

    def classifier_param_count(self) -> int:
        return sum(p.numel() for p in (*self.trunk.parameters(), *self.main.parameters(),
                                       *self.fc.parameters()))

    def rotation_param_count(self) -> int:
        return sum(p.numel() for p in self.parameter_groups().get("rotation", []))
