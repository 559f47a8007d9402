"""`source`: no adaptation, the model as trained (the "joint training" row of the TTT paper's Table A2)."""
from __future__ import annotations

from tttgui.methods.base import Method


class Source(Method):
    name = "source"
    label = "No adaptation"
    summary = "no adaptation: predict with the trained model"
    source = "baseline"
    adapts = False
    episodic = {"steps": 0, "lr": 0.0, "optimizer": "sgd", "views": 1}
    online = episodic
    default_param_words = "none"

    def parameters(self):
        return []

    def draw(self, images, gen):
        return {"views": images}

    def loss(self, model, batch):
        raise RuntimeError("the source method has no loss")
