"""Linear probe: a linear classifier fitted on frozen features, the standard measure of a self-supervised
representation. Fitted by full-batch L-BFGS on standardised features (deterministic: no data order, no
augmentation), then folded back so it acts on the raw pooled features like the model's own `fc`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tttgui.augment import to_float

WEIGHT_DECAY = 1e-4       # L2 on the standardised weights, per the mean cross-entropy
MAX_ITER = 500


@torch.no_grad()
def extract_features(model, images, device, batch: int = 500) -> torch.Tensor:
    """Pooled features (float32, CPU) of uint8 NHWC images, in eval mode."""
    model.eval()
    images = torch.as_tensor(images)
    out = [model.features(to_float(images[i:i + batch]).to(device)).float().cpu()
           for i in range(0, len(images), batch)]
    return torch.cat(out) if out else torch.zeros(0, model.feat_dim)


def fit_linear(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
               weight_decay: float = WEIGHT_DECAY) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) minimising mean CE + weight_decay * |W_std|^2 on the given features; W acts on raw features."""
    f = features.double()
    mu, sd = f.mean(0), f.std(0).clamp_min(1e-8)
    z = (f - mu) / sd
    y = torch.as_tensor(labels, dtype=torch.long)
    w = torch.zeros(num_classes, f.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=MAX_ITER, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.t() + b, y) + weight_decay * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w_raw = (w / sd).detach()
    return w_raw.float(), (b - w_raw @ mu).detach().float()


def linear_probe(model, x_train, y_train, x_test, y_test, device) -> dict:
    """Fit on (x_train, y_train), report the test error (%); labels are read here and nowhere in the
    self-supervised phase."""
    w, b = fit_linear(extract_features(model, x_train, device), torch.as_tensor(y_train),
                      model.spec.num_classes)
    pred = (extract_features(model, x_test, device) @ w.t() + b).argmax(1).numpy()
    error = 100.0 * float(np.mean(pred != np.asarray(y_test)))
    return {"error": round(error, 2), "train_images": int(len(x_train)), "test_images": int(len(x_test)),
            "how": f"L-BFGS logistic regression on frozen, standardised pooled features, L2 {WEIGHT_DECAY}",
            "weight": w, "bias": b}
