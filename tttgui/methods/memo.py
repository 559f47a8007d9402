"""`memo`: marginal entropy over AugMix views (Zhang, Levine & Finn, NeurIPS 2022, zhangmarvin/memo).

CIFAR-10 recipe from cifar-10-exps/test_calls/test_adapt.py: 32 views, each RandomCrop(32, pad 4) + flip then
AugMix (3 chains, depth 1-3, severity 1, Dirichlet(1) / Beta(1) mixing, geometric and tone ops only, each op
on uint8 as PIL computes it, geometric ones filled with fillcolor=128, i.e. (128, 0, 0) on RGB); loss =
entropy of the softmax averaged over the views; all parameters; SGD lr 0.005, no momentum or weight decay;
1 step and a reset before every image. Online (no reset; the original has no such mode) keeps the same recipe
at its default batch of one image; with a larger batch the 32 views are shared by its images (two each at the
continual protocol's 16). Not ported: MEMO's BatchNorm prior adaptation (N = 16), which only matters for BN
models.
"""
from __future__ import annotations

import math

from tttgui.augment import augmix_views, crop_flip
from tttgui.methods.base import Method, view_index


class MEMO(Method):
    name = "memo"
    label = "MEMO"
    summary = "marginal entropy over AugMix views (Zhang et al. 2022)"
    source = "Zhang, Levine & Finn, NeurIPS 2022; zhangmarvin/memo (cifar-10-exps/test_calls/test_adapt.py)"
    episodic = {"steps": 1, "lr": 0.005, "optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "views": 32}
    online = dict(episodic)
    default_params = "all"
    default_param_words = "all parameters"

    def draw(self, images, gen):
        k = self.view_count(len(images))
        pre = crop_flip(images[view_index(len(images), k, images.device)], gen)
        return {"views": augmix_views(pre, gen), "images": len(images)}

    def loss(self, model, batch):
        n = batch["images"]
        logp = model(batch["views"]).log_softmax(-1)          # (per_image * n, classes), view j of image j % n
        logp = logp.reshape(-1, n, logp.shape[-1])
        marginal = logp.logsumexp(0) - math.log(logp.shape[0])   # log of the mean probability, per image
        return -(marginal.exp() * marginal).sum(-1).mean()
