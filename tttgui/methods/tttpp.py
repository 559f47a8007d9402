"""`ttt++`: contrastive TTT with online feature alignment (Liu et al., NeurIPS 2021, vita-epfl/ttt-plus-plus).

From the CIFAR-10 scripts: SimCLR NT-Xent (temperature 0.5) on two SimCLR views per sample; plus alignment of
the mean (linear MMD) and covariance (CORAL, ||ΔC||²_F / 4d²) of the encoder features and of the projection-head
outputs to source moments stored in the checkpoint, weighted 0.05 (features) and 0.2 (projections); SGD lr 0.01,
momentum 0.9; only the encoder adapts (projection head and classifier frozen). Online, moments are taken over
the current samples plus a FIFO queue of past features (1536 in all), as in the paper's code.
Differences, documented: the paper divides each alignment term by an average source-vs-source batch divergence
measured on training batches; we divide by its Gaussian expectation for a single source sample, computed from
the stored mean and covariance (so each term is unitless and O(1) even for the views of one image), with the
MMD term halved. Without a contrastive head only the feature alignment runs (the
README's "feature alignment only" variant). The paper is offline and multi-epoch with test-error early stopping;
episodically we take 10 steps on 32 views of one image (as standard TTT), online 1 step per batch.
"""
from __future__ import annotations

import torch

from tttgui.augment import simclr_views
from tttgui.errors import UserError
from tttgui.methods.base import Method, view_index
from tttgui.training import nt_xent

TEMPERATURE = 0.5
SCALE_FEATURES, SCALE_PROJECTION = 0.05, 0.2
QUEUE = 1536


class TTTPlusPlus(Method):
    name = "ttt++"
    summary = "contrastive loss + feature mean/covariance alignment to the source (Liu et al. 2021)"
    source = "Liu et al., NeurIPS 2021; vita-epfl/ttt-plus-plus (cifar/scripts/run_ttt++_cifar10.sh)"
    episodic = {"steps": 10, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "views": 32}
    online = {"steps": 1, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "views": 32}
    default_params = "encoder"
    default_param_words = "encoder (trunk + feature branch)"

    def __init__(self, model, source_stats, recipe, device):
        super().__init__(model, source_stats, recipe, device)
        feats = self.stats.get("features")
        if not feats or "cov" not in feats:
            raise UserError("method ttt++ needs the source feature mean and covariance; this checkpoint has "
                            "none (expected one written by tttgui train)")
        self.contrastive = "contrastive" in model.spec.heads and "projection" in self.stats
        self.spaces = {"features": _moments(feats, device)}
        if self.contrastive:
            self.spaces["projection"] = _moments(self.stats["projection"], device)
        self.queue: dict[str, torch.Tensor] = {}
        self._pending: dict[str, torch.Tensor] = {}

    def draw(self, images, gen):
        n = len(images)
        per = max(2, -(-self.recipe.views // n))
        per += per % 2                                   # pairs: sample i and i + half are two views of one image
        idx = view_index(n, per * n, images.device)
        return {"views": simclr_views(images[idx], gen)}

    def loss(self, model, batch):
        f = model.features(batch["views"])
        total = SCALE_FEATURES * self._align("features", f)
        if self.contrastive:
            z = model.project(f)
            total = total + nt_xent(z, TEMPERATURE) + SCALE_PROJECTION * self._align("projection", z)
        return total

    def _align(self, space: str, x: torch.Tensor) -> torch.Tensor:
        if self.recipe.protocol == "online":
            self._pending[space] = x.detach()
            if space in self.queue:
                x = torch.cat([x, self.queue[space]])
        mean_s, cov_s, ref_mean, ref_cov = self.spaces[space]
        mean = x.mean(0)
        xc = x - mean
        cov = xc.t() @ xc / max(len(x) - 1, 1)
        d = x.shape[1]
        coral = (cov - cov_s).pow(2).sum() / (4 * d * d)
        mmd = (mean - mean_s).pow(2).mean()
        return coral / ref_cov + 0.5 * mmd / ref_mean

    def commit(self):
        if self.recipe.protocol != "online":
            return
        for space, x in self._pending.items():
            old = self.queue.get(space)
            both = x if old is None else torch.cat([x, old])
            self.queue[space] = both[:max(QUEUE - len(x), 0)]   # newest first; the current batch joins later
        self._pending = {}

    def reset_state(self):
        self.queue, self._pending = {}, {}


def _moments(stats: dict, device):
    """Source mean and covariance, and the expected CORAL / MMD between the source moments and those of one
    sample drawn from a Gaussian with them: the source-vs-source yardstick of each term."""
    mean = stats["mean"].to(device).float()
    cov = stats["cov"].to(device).float()
    d = len(mean)
    ref_cov = float((cov.pow(2).sum() + torch.diagonal(cov).sum() ** 2) / (4 * d * d))
    ref_mean = float(torch.diagonal(cov).sum() / d)
    return mean, cov, max(ref_mean, 1e-12), max(ref_cov, 1e-12)
