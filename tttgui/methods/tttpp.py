"""`ttt++`: contrastive TTT with online feature alignment (Liu et al., NeurIPS 2021, vita-epfl/ttt-plus-plus).

As cifar/ttt++.py computes it with scripts/run_ttt++_cifar10.sh (--method both --fix_ssh):
- contrastive: SupConLoss without labels on two SimCLR views per test image, temperature 0.5 and its default
  base temperature 0.07, so NT-Xent(0.5) x 0.5 / 0.07, on the L2-normalised projection;
- alignment of the encoder features (scale_ext 0.05) and of the projection head's un-normalised output
  head(ext(x)) (scale_ssh 0.2) to source moments: CORAL + 0.5 x linear MMD, each divided by its mean between two
  source batches of the queue size (1536), measured on source features by tttgui.stats (stored as `align`);
- the aligned test images get the transform the source statistics were taken with (recorded as `transform`,
  crop+flip), not SimCLR views;
- online, a FIFO of past features joins the current batch once it is full (queue 1536 = batch + 1280 stored);
  before that the batch is aligned alone, with the same scale;
- SGD lr 0.01, momentum 0.9; only the encoder adapts (projection head and classifier frozen).
Without a contrastive head only the feature alignment runs (the original's --method align). Ours, documented:
episodically (no such mode in the original) 10 steps on 32 views of one image, each term scaled for batches of
the views aligned. A checkpoint without a measured yardstick (statistics older than it) gets the Gaussian
expectation from its stored covariance; `tttgui stats --checkpoint FILE --data TRAIN --in-place` measures it.
The original's offline protocol (epochs over the whole test set) is the evaluation engine's: the online update
per batch of 256, never reset, for a fixed number of epochs, the first two (--bnepoch 2) forward-only
(Adapter.observe), so the first step already aligns a full queue; the queue carries over between epochs.
"""
from __future__ import annotations

import torch

from tttgui.augment import crop_flip, simclr_views
from tttgui.errors import UserError
from tttgui.methods.base import Method, norm_kind, view_index
from tttgui.stats import ALIGN_BATCH, coral, covariance, linear_mmd
from tttgui.training import nt_xent

TEMPERATURE, BASE_TEMPERATURE = 0.5, 0.07      # SupConLoss(temperature=0.5); base_temperature left at 0.07
SCALE_FEATURES, SCALE_PROJECTION = 0.05, 0.2
MMD_SCALE = 0.5
QUEUE = ALIGN_BATCH
RECOMPUTE = "recompute them with tttgui stats --checkpoint FILE --data TRAIN --in-place"


class TTTPlusPlus(Method):
    name = "ttt++"
    summary = "contrastive loss + feature mean/covariance alignment to the source (Liu et al. 2021)"
    source = "Liu et al., NeurIPS 2021; vita-epfl/ttt-plus-plus (cifar/scripts/run_ttt++_cifar10.sh)"
    episodic = {"steps": 10, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "views": 32}
    online = {"steps": 1, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "views": 32}
    default_params = "encoder"
    default_param_words = "encoder (trunk + feature branch)"
    batch_size = 256                   # BS_SSL = BS_ALIGN = 256 (the offline protocol's batches)

    @classmethod
    def display_name(cls, model=None) -> str:
        """What runs on this model: the contrastive term needs the checkpoint's projection head."""
        if model is None:
            return "TTT++"
        terms = "align + contrastive" if "contrastive" in model.spec.heads else "align only"
        return f"TTT++ ({terms}, {norm_kind(model)})"

    def __init__(self, model, source_stats, recipe, device):
        super().__init__(model, source_stats, recipe, device)
        feats = self.stats.get("features")
        if not feats or "cov" not in feats:
            raise UserError("method ttt++ needs the source feature mean and covariance; this checkpoint has "
                            "none (expected one written by tttgui train)")
        self.contrastive = "contrastive" in model.spec.heads and "projection" in self.stats
        if self.contrastive and self.stats["projection"].get("space") != "head":
            raise UserError("method ttt++ aligns the projection head's un-normalised output; this checkpoint's "
                            f"statistics are of the normalised one: {RECOMPUTE}")
        self.transform = self.stats.get("transform", "crop+flip")   # the shipped model's were crop+flip
        self.spaces = {"features": feats}
        if self.contrastive:
            self.spaces["projection"] = self.stats["projection"]
        self.queue: dict[str, torch.Tensor] = {}
        self._pending: dict[str, torch.Tensor] = {}
        self.aligned: dict[str, int] = {}            # samples in the last alignment of each space (diagnostic)

    @property
    def carries(self) -> bool:
        return self.recipe.protocol != "episodic"

    def draw(self, images, gen):
        n = len(images)
        k = self.view_count(n)
        align = images[view_index(n, k, images.device)]
        if self.transform == "crop+flip":
            align = crop_flip(align, gen)
        if not self.contrastive:
            return {"views": align, "align": align}
        per = max(2, -(-self.recipe.views // n))
        per += per % 2                                   # pairs: sample i and i + half are two views of one image
        return {"views": simclr_views(images[view_index(n, per * n, images.device)], gen), "align": align}

    def loss(self, model, batch):
        f = model.features(batch["align"])
        total = SCALE_FEATURES * self.divergence("features", f)
        if self.contrastive:
            total = total + SCALE_PROJECTION * self.divergence("projection", model.projector.net(f))
            total = total + contrastive(model.project(model.features(batch["views"])))
        return total

    def divergence(self, space: str, x: torch.Tensor) -> torch.Tensor:
        coral_ratio, mmd_ratio = self.terms(space, x)
        return coral_ratio + MMD_SCALE * mmd_ratio

    def terms(self, space: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(CORAL, MMD) of x (plus the queue) against the source, each in units of its source-vs-source mean:
        about 0.5 for a source batch of the queue size (a batch against the whole source is half as far as
        against another batch)."""
        size = QUEUE if self.carries else len(x)
        if self.carries:
            self._pending[space] = x.detach()
            need = QUEUE - len(x)
            stored = self.queue.get(space)
            if need > 0 and stored is not None and len(stored) >= need:   # the original's queue.get(): once full
                x = torch.cat([x, stored[:need]])
        self.aligned[space] = len(x)
        s = self.spaces[space]
        ref_coral, ref_mmd = yardstick(s, size)
        mean_s, cov_s = s["mean"].to(x), s["cov"].to(x)
        return coral(cov_s, covariance(x)) / ref_coral, linear_mmd(mean_s, x.mean(0)) / ref_mmd

    def commit(self):
        if not self.carries:
            return
        for space, x in self._pending.items():
            old = self.queue.get(space)
            self.queue[space] = (x if old is None else torch.cat([x, old]))[:QUEUE]   # newest first
        self._pending = {}

    def reset_state(self):
        self.queue, self._pending, self.aligned = {}, {}, {}


def contrastive(z: torch.Tensor) -> torch.Tensor:
    """SupConLoss(temperature=0.5) without labels: NT-Xent scaled by temperature / base_temperature."""
    return TEMPERATURE / BASE_TEMPERATURE * nt_xent(z, TEMPERATURE)


def yardstick(space: dict, size: int) -> tuple[float, float]:
    """Mean CORAL and MMD between two source batches of `size` samples. Measured ones (stats `align`) are
    rescaled from the batch they were measured at (both fall as 1/batch); without them, the Gaussian
    expectation from the stored covariance: E CORAL = 2 (|C|²_F + tr(C)²) / ((size-1) 4d²), E MMD = 2 tr(C)/(size d)."""
    cov = space["cov"].double()
    d = cov.shape[0]
    measured = space.get("align") or {}
    if "coral" in measured:
        b = measured["batch"]
        c, m = measured["coral"] * (b - 1) / max(size - 1, 1), measured["mmd"] * b / size
    else:
        tr = float(torch.diagonal(cov).sum())
        c = 2 * (float(cov.pow(2).sum()) + tr * tr) / (max(size - 1, 1) * 4 * d * d)
        m = 2 * tr / (size * d)
    return max(c, 1e-12), max(m, 1e-12)
