"""Prototype classifier (Han et al. 2025, Eq. 1): a self-supervised encoder classifies by forward passes only,
p(y=c|x) = softmax_c(sigma * cos(f(x), mu_c)), mu_c the mean feature of the labelled images of class c.

Choices the paper leaves open (written on the model card too): features are the pooled trunk features (not the
projection head), each L2-normalised before averaging; sigma = ModelSpec.cosine_scale (10 by default).
"""
from __future__ import annotations

import copy
from dataclasses import replace

import torch

from tttgui.errors import UserError
from tttgui.probe import extract_features


def class_prototypes(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Row c: the mean of the L2-normalised features of class c (every class needs an image)."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if missing:
        raise UserError(f"no labelled image of class(es) {missing}; expected at least one image of every class "
                        "to build its prototype")
    f = torch.nn.functional.normalize(features.float(), dim=1)
    protos = torch.zeros(num_classes, f.shape[1]).index_add_(0, labels, f)
    return protos / torch.bincount(labels, minlength=num_classes).clamp_min(1)[:, None]


def prototype_model(model, images, labels, device, scale: float | None = None):
    """A copy of `model` whose classifier is the cosine prototype classifier built from (images, labels)."""
    from tttgui.models.factory import build_model

    protos = class_prototypes(extract_features(model, images, device), labels, model.spec.num_classes)
    spec = replace(model.spec, classifier="cosine",
                   cosine_scale=model.spec.cosine_scale if scale is None else float(scale))
    out = build_model(spec)
    state = {k: v for k, v in copy.deepcopy(model.state_dict()).items() if not k.startswith("fc.")}
    state["fc.weight"] = protos
    out.load_state_dict(state)
    return out.to(device).eval()
