"""`ttt`: test-time training with rotation prediction (Sun et al., ICML 2020, ttt_cifar_release).

Recipe from the paper's code: 32 copies of the test image, each RandomCrop(32, pad 4) + horizontal flip and a
random rotation label in {0, 90, 180, 270}; cross-entropy of the rotation head; plain SGD lr 1e-3 (the last
training lr), no momentum, no weight decay; the shared trunk and the rotation head adapt. Standard TTT: 10 steps
and a reset before every image; TTT-Online: 1 step per image and never reset.
"""
from __future__ import annotations

import torch.nn.functional as F

from tttgui.augment import crop_flip, random_rotations, rotate
from tttgui.methods.base import Method, view_index


class TTT(Method):
    name = "ttt"
    label = "TTT"
    summary = "rotation prediction on augmented views (Sun et al. 2020)"
    source = "Sun et al., ICML 2020; yueatsprograms/ttt_cifar_release (test_calls/test_adapt.py)"
    requires = ("rotation",)
    episodic = {"steps": 10, "lr": 1e-3, "optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "views": 32}
    online = {"steps": 1, "lr": 1e-3, "optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "views": 32}
    default_params = "trunk+rotation"
    default_param_words = "shared trunk + rotation head"

    def draw(self, images, gen):
        k = self.view_count(len(images))
        views = crop_flip(images[view_index(len(images), k, images.device)], gen)
        labels = random_rotations(k, gen, images.device)
        return {"views": rotate(views, labels), "labels": labels}

    def loss(self, model, batch):
        return F.cross_entropy(model.rotation_logits(batch["views"]), batch["labels"])
