"""The update loop shared by sessions and evaluation: one model, one method, one optimizer, exact resets.

Reset copies a snapshot taken at construction back into the adapted parameters and every buffer and empties
the optimizer state (a fresh optimizer), so no per-step model copies are needed. Gradients are taken with
`torch.autograd.grad` on exactly the adapted parameters, so frozen weights cost no gradient work and are never
written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tttgui.errors import UserError
from tttgui.methods.base import MethodConfig
from tttgui.methods.registry import get_method


@dataclass(frozen=True)
class Update:
    loss: float | None
    grad_norm: float | None
    grad_cosine: float | None
    status: str                      # "ok" | DIVERGED


# A non-finite loss, gradient, weight or logit: the source weights are restored and the image counts as wrong.
DIVERGED = "diverged"


def image_seed(seed: int, index: int) -> int:
    """The generator seed of one image in episodic mode: depends on the image, not on what ran before."""
    return (int(seed) * 1_000_003 + int(index)) % (2 ** 62)


class Adapter:
    def __init__(self, model, source_stats: dict, config: MethodConfig, device):
        self.model, self.config, self.device = model, config, torch.device(device)
        cls = get_method(config.method)
        self.recipe = cls.resolve(config)
        self.method = cls(model, source_stats, self.recipe, self.device)
        self.named = self.method.parameters()
        self.params = [p for _, p in self.named]
        ids = {id(p) for p in self.params}
        shared = model.parameter_groups()["trunk"]
        self.shared = [p for p in shared]
        self._extra = [p for p in shared if id(p) not in ids]    # trunk weights needed only for the cosine
        self.optimizer = make_optimizer(self.params, self.recipe) if self.params else None
        # Snapshot of what updates can change: adapted parameters and every buffer.
        self._tensors = self.params + [b for b in model.buffers()]
        self._snapshot = [t.detach().clone() for t in self._tensors]
        self.gen = torch.Generator().manual_seed(config.seed)
        self._outputs = None           # (images, logits before the last update) when recipe.outputs == "before"

    # -- state ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def reset(self) -> None:
        for t, s in zip(self._tensors, self._snapshot):
            t.copy_(s)
        if self.optimizer is not None:
            self.optimizer.state.clear()
        self.method.reset_state()
        self._outputs = None

    def seed(self, value: int) -> None:
        self.gen.manual_seed(int(value))

    # -- work -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits on the un-augmented images in the method's predict mode (eval mode; Tent: BatchNorm batch
        statistics); with recipe.outputs "before", those computed just before the last update of `images`."""
        if self._outputs is not None and self._outputs[0] is images:
            return self._outputs[1]
        with self.method.predict_mode(self.model):
            return self.model(images)

    def outcome(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`decide` on the predicted logits; non-finite ones also restore the source weights (a model that
        overflows must not carry on to the next images)."""
        pred, conf, ok = decide(self.predict(images))
        if not ok.all():
            self.reset()
        return pred, conf, ok

    def update(self, images: torch.Tensor, labels: torch.Tensor | None = None, batch: dict | None = None) -> Update:
        """One optimizer step on views drawn from `images` (or on a given drawn `batch`); with labels, also the
        gradient-alignment cosine (a diagnostic: labels never enter the update)."""
        if not self.method.adapts or not self.params:
            return Update(None, None, None, "ok")
        if len(images) < self.method.min_batch:     # e.g. aws on one image: no in-batch pairs, another method
            raise UserError(f"{self.method.name} learns from the pairs of a batch and this step has {len(images)} "
                            f"image(s); expected {self.method.min_batch} or more: a stream in batches (tttgui eval "
                            f"--batch-size {self.method.batch_size}, or Batch evaluation with B = "
                            f"{self.method.batch_size})")
        with torch.enable_grad():   # grad mode is thread-local: a GUI worker may run under no_grad
            if batch is None:
                batch = self.method.draw(images, self.gen)
            with self.method.train_mode(self.model):
                loss = self.method.loss(self.model, batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                return self._diverged(value)
            wanted = self.params + (self._extra if labels is not None else [])
            grads = torch.autograd.grad(loss, wanted, allow_unused=True)
            cosine = self._cosine(images, labels, dict(zip(map(id, wanted), grads))) if labels is not None else None
        grads = grads[:len(self.params)]
        present = [g for g in grads if g is not None]
        gnorm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in present]))) if present else 0.0
        if not math.isfinite(gnorm):
            return self._diverged(value, gnorm, cosine)
        if self.recipe.outputs == "before":   # as official Tent returns the outputs of its update's forward
            self._outputs = None              # not the previous step's
            self._outputs = (images, self.predict(images))
        for p, g in zip(self.params, grads):
            p.grad = g
        self.optimizer.step()
        for p in self.params:
            p.grad = None
        with torch.no_grad():
            # element-wise, as the vectorised path checks (a norm of huge finite weights overflows)
            finite = bool(torch.stack([torch.isfinite(p).all() for p in self.params]).all())
        if not finite:
            return self._diverged(value, gnorm, cosine)
        self.method.commit()
        return Update(value, gnorm, cosine, "ok")

    @torch.no_grad()
    def observe(self, images: torch.Tensor) -> float | None:
        """The method's forward on `images` without a step, its online state advanced (TTT++'s queue): what the
        original TTT++ does in its first epochs (--bnepoch 2), so its first step aligns a full queue."""
        if not self.method.adapts:
            return None
        with self.method.train_mode(self.model):
            value = float(self.method.loss(self.model, self.method.draw(images, self.gen)))
        self.method.commit()
        return value

    def _diverged(self, value, gnorm=None, cosine=None) -> Update:
        # Restore on every non-finite path, so no later step or image starts from a half-diverged model.
        self.reset()
        return Update(value, gnorm, cosine, DIVERGED)

    def _cosine(self, images, labels, ssl_grads: dict) -> float | None:
        """TTT paper diagnostic: cosine of the self-supervised and classification gradients on the trunk."""
        ce = F.cross_entropy(self.model(images), labels)
        g_main = torch.autograd.grad(ce, self.shared, allow_unused=True)
        a, b = [], []
        for p, gm in zip(self.shared, g_main):
            gs = ssl_grads.get(id(p))
            if gs is not None and gm is not None:
                a.append(gs.flatten())
                b.append(gm.flatten())
        if not a:
            return None
        a, b = torch.cat(a), torch.cat(b)
        denom = float(a.norm() * b.norm())
        return float(a @ b) / denom if denom > 0 else None


@torch.no_grad()
def decide(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of logits: (class, confidence, finite). A row with a non-finite logit predicts -1 with
    confidence nan: argmax would silently say class 0."""
    ok = torch.isfinite(logits).all(-1)
    conf, pred = logits.softmax(-1).max(-1)
    pred = torch.where(ok, pred, torch.full_like(pred, -1))
    conf = torch.where(ok, conf, torch.full_like(conf, float("nan")))
    return pred.cpu().numpy(), conf.cpu().numpy(), ok.cpu().numpy()


def make_optimizer(params, recipe):
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                               nesterov=recipe.nesterov and recipe.momentum > 0)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, betas=(0.9, 0.999), weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
