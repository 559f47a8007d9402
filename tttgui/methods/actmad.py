"""`actmad`: activation matching (Mirza et al., CVPR 2023, jmiemirza/ActMAD, methods/actmad_cifar.py).

Loss = 0.5 × (Σ_layers L1(mean) + Σ_layers L1(var)) between the test batch's statistics (its variance unbiased,
torch.var's default, as the original's) and the source ones, taken at the output of every norm layer of the
classification path, location-aware: one mean and variance per (channel, h, w) over the batch dimension (our
source statistics store exactly these as loc_mean / loc_var, taken like ActMAD's clean statistics on random
training images with crop + flip; see tttgui.stats).
All parameters; SGD lr 1e-2 (CIFAR-10), momentum 0.9, Nesterov, weight decay 5e-4; one step per batch;
test samples get RandomCrop(pad 4) + flip. Online: batches of the stream (one view per image when the batch has
at least `views` images, else several views of each). Episodic: 32 views of the single image, 1 step.
Not ported: the paper's reporting of the minimum error over steps (a label leak); we report the last iterate.
"""
from __future__ import annotations

from tttgui.augment import crop_flip
from tttgui.errors import UserError
from tttgui.methods.base import Method, view_index
from tttgui.stats import capture_norm_outputs

RECIPE = {"steps": 1, "lr": 1e-2, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True,
          "views": 32}


class ActMAD(Method):
    name = "actmad"
    label = "ActMAD"
    summary = "L1 alignment of norm-layer activation statistics to the source (Mirza et al. 2023)"
    source = "Mirza et al., CVPR 2023; jmiemirza/ActMAD (methods/actmad_cifar.py)"
    episodic = dict(RECIPE)
    online = dict(RECIPE)
    batch_size = 128                   # ActMAD on CIFAR-10-C: batches of 128
    default_params = "all"
    default_param_words = "all parameters"

    @classmethod
    def missing_stats(cls, model, source_stats):
        norm = (source_stats or {}).get("norm") or {}
        names = [n for n, _ in model.norm_layers()]
        if not names or any(n not in norm or "loc_mean" not in norm[n] for n in names):
            return ("method actmad needs location-wise source statistics of every norm layer; this checkpoint "
                    "has none (expected one written by tttgui train)")
        return None

    def __init__(self, model, source_stats, recipe, device):
        super().__init__(model, source_stats, recipe, device)
        if why := self.missing_stats(model, self.stats):
            raise UserError(why)
        norm = self.stats["norm"]
        names = [n for n, _ in model.norm_layers()]
        self.targets = {n: (norm[n]["loc_mean"].to(device), norm[n]["loc_var"].to(device)) for n in names}

    def draw(self, images, gen):
        k = self.view_count(len(images))
        return {"views": crop_flip(images[view_index(len(images), k, images.device)], gen)}

    def loss(self, model, batch):
        with capture_norm_outputs(model, keep_graph=True) as outs:
            model(batch["views"])
        total_mean = total_var = 0.0
        for name, out in outs.items():
            mean, var = self.targets[name]
            total_mean = total_mean + (out.mean(0) - mean).abs().mean()
            # the original's torch.var: unbiased over the batch (a population variance sits (B-1)/B low, and the
            # loss then pulls activations to variances B/(B-1) too large: 7 % at B = 16)
            total_var = total_var + (out.var(0, unbiased=len(out) > 1) - var).abs().mean()
        return 0.5 * (total_mean + total_var)
