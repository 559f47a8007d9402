"""`tent`: entropy minimisation of the norm layers' affine parameters (Wang et al., ICLR 2021, DequanWang/tent).

Recipe from the official CIFAR-10-C config: Adam lr 1e-3 (beta1 0.9, no weight decay), one update per batch,
only the scale/shift of the normalisation layers adapt. Tent is defined on BatchNorm: as the official code, BN
normalises with the current batch both in the update and when predicting (running statistics left untouched),
and online the prediction of a batch is the output of its update's forward, from before the step
(recipe.outputs "before"). On a model without BatchNorm it is another method, entropy minimisation of the
GroupNorm/LayerNorm affine parameters, named "Tent (GN affine)" / "Tent (LN affine)" where a user reads it.
Online: the test batch itself (views 1 per image: no augmentation). Tent has no single-image recipe; episodically
it adapts on 32 crop+flip views of the image (our choice, documented), one step, reset before every image, and
predicts after the step.
"""
from __future__ import annotations

from tttgui.augment import crop_flip
from tttgui.methods.base import Method, batchnorm_batch_stats, entropy, norm_kind, view_index


class Tent(Method):
    name = "tent"
    summary = "entropy minimisation of norm-layer affine parameters (Wang et al. 2021)"
    source = "Wang et al., ICLR 2021; DequanWang/tent (cfgs/tent.yaml: Adam lr 1e-3, 1 step)"
    episodic = {"steps": 1, "lr": 1e-3, "optimizer": "adam", "views": 32}
    online = {"steps": 1, "lr": 1e-3, "optimizer": "adam", "views": 1}
    batch_size = 200                   # cfgs/tent.yaml (CIFAR-10-C): TEST.BATCH_SIZE 200
    other_optimizers = {"sgd": {"momentum": 0.9, "nesterov": True}}    # conf.py's OPTIM for METHOD SGD
    default_params = "norm"
    default_param_words = "norm-layer affine parameters"
    carried_outputs = "before"
    batch_stats_predict = True

    @classmethod
    def display_name(cls, model=None) -> str:
        kind = "BN" if model is None else norm_kind(model)
        return "Tent" if kind == "BN" else "Tent (LN affine)" if kind == "LN" else "Tent (GN affine)"

    def draw(self, images, gen):
        k = self.view_count(len(images))
        if k == len(images):   # one sample per image: the images themselves, as Tent does on a batch
            return {"views": images}
        return {"views": crop_flip(images[view_index(len(images), k, images.device)], gen)}

    def loss(self, model, batch):
        return entropy(model(batch["views"])).mean()

    @classmethod
    def batchnorm_scope(cls, model):   # batchnorm_batch_stats's: every layer
        return list(model.named_modules())

    def train_mode(self, model):
        return batchnorm_batch_stats(model)

    def predict_mode(self, model):
        return batchnorm_batch_stats(model)
