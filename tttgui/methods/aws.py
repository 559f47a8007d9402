"""`aws`: Adapt Without Source pretraining (Han, Park, Han, Hwang 2025, arXiv 2506.23529, no public code).

A self-supervised encoder f_ssl with a prototype classifier g_ssl (see tttgui/prototypes.py: `tttgui train
--finetune prototypes`) is adapted on the test stream. The target model (f_t, g_t) starts as a copy of (f_ssl,
g_ssl) and is the model that adapts and predicts; f_ssl stays frozen and g_ssl is updated. Loss per batch
(Eqs. 2-5):
  L = L_cl + 0.01 L_kd + 0.4 L_ml
  L_cl  in-batch contrastive on f_t: w_ij = +1 when the top-1 predictions of i and j agree, -1 when their top-5
        sets are disjoint, 0 otherwise; L_cl = -sum_i sum_j w_ij / sum_j |w_ij| log softmax_j(S_ij / T),
        S_ij = cos(f_t(x_i), f_t(x_j))
  L_kd  mean_i |normalize(f_t(x_i)) - normalize(f_ssl(x_i))|^2
  L_ml  CE(p_ssl, argmax p_t) (trains g_ssl) - I(p_t; p_ssl) (IIC mutual information, trains the target)
SGD momentum 0.9, lr = base x batch / 64.

Choices the paper leaves open (also in docs/results.md): L_cl sums over the batch as Eq. 3 is printed (Eq. 4 has a
1/B, Eq. 3 none; `aws-mean` takes the mean over the anchors instead); its row normaliser is sum_j |w_ij|, where the
printed sum_j w_ij is zero or negative whenever a row has as many disjoint pairs as agreeing ones (and would flip
that row's sign); rows with no weight add nothing; self-pairs are left out of the weights and of the softmax's
denominator; no temperature (T = 1, as printed); the top-k sets come from the target's predictions, detached; the
prototypes are means of L2-normalised pooled trunk features, scale sigma = 10; the target (f_t, g_t) predicts, from
its output before the batch's step (online error, as CoTTA and Tent report it); one step per batch; no weight
decay; base lr 1e-3 for the small ResNet (the paper's ViT bases, 1e-5 / 1e-6, are per backbone and were picked on
the test stream; ours is fixed in advance), so 2.5e-4 at batch 16 (another --batch-size needs --lr base x batch /
64); g_ssl's update uses the same optimizer and lr; the mutual information is IIC's, on the symmetrised joint,
clamped at 1e-8; no augmentation; the images of a corruption come in the stream's seeded order. Batches only
(online with a batch size of 2 or more, continual, offline): one image has no in-batch pairs.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from tttgui.errors import UserError
from tttgui.methods.base import Method

def open_choices() -> str:
    """The docstring's paragraph on what the paper leaves open, as one line (the results pages quote it)."""
    text = __doc__.split("Choices the paper leaves open", 1)[1].split("\n\n", 1)[0]
    return "Choices the paper leaves open " + " ".join(text.split())


TOP_K, TOP_N = 1, 5
LAMBDA_KD, LAMBDA_ML = 0.01, 0.4
TEMPERATURE = 1.0
BASE_LR, BATCH = 1e-3, 16


class AWS(Method):
    name = "aws"
    summary = ("contrastive + distillation from the frozen self-supervised encoder + mutual learning with its "
               "prototype classifier (Han et al. 2025)")
    source = "Han, Park, Han, Hwang 2025, arXiv 2506.23529 (no official code); k, n = 1, 5; lambda 0.01, 0.4"
    online = {"steps": 1, "lr": BASE_LR * BATCH / 64, "optimizer": "sgd", "momentum": 0.9, "views": 1}
    default_params = "all"
    default_param_words = "target encoder and classifier, and the self-supervised model's classifier"
    carried_outputs = "before"
    protocols = ("online", "continual", "offline")   # every protocol of batches (continual: the paper's)
    batch_size = BATCH
    reduction = "sum"                                # L_cl over the anchors: Eq. 3 as printed (see AWSMean)
    min_batch = 2                                    # L_cl is over the pairs of a batch
    lr_per_batch = True

    @classmethod
    def display_name(cls, model=None) -> str:
        """Which classifier g_ssl is: the paper's prototypes, or a supervised model's linear layer."""
        if model is None:
            return "AWS"
        return "AWS (prototype classifier)" if model.spec.classifier == "cosine" else "AWS (linear classifier)"

    @classmethod
    def defaults(cls, protocol: str) -> dict:
        if protocol not in cls.protocols:    # its contrastive term needs the pairs of a batch
            raise UserError(f"{cls.name} adapts on batches of a stream; expected --protocol online, continual or "
                            f"offline, not {protocol!r}")
        return dict(cls.online)

    def __init__(self, model, source_stats, recipe, device):
        super().__init__(model, source_stats, recipe, device)
        # f_ssl: a frozen copy of the encoder as it arrives; g_ssl: its classifier, which does adapt
        self.encoder_ssl = nn.ModuleDict({"trunk": copy.deepcopy(model.trunk), "main": copy.deepcopy(model.main)})
        self.encoder_ssl.requires_grad_(False).eval()
        self.classifier_ssl = copy.deepcopy(model.fc).requires_grad_(True)

    def parameters(self):
        own = super().parameters()
        return own + [(f"classifier_ssl.{n}", p) for n, p in self.classifier_ssl.named_parameters()]

    def draw(self, images, gen):
        return {"views": images}

    def ssl_features(self, x):
        with torch.no_grad():
            h = self.encoder_ssl["trunk"]((x - self.model.mean) / self.model.std)
            return self.encoder_ssl["main"](h)

    def loss(self, model, batch):
        x = batch["views"]
        f_t = model.features(x)
        logits_t = model.fc(f_t)
        f_s = self.ssl_features(x)
        logits_s = self.classifier_ssl(f_s)
        return aws_loss(f_t, logits_t, f_s, logits_s, self.reduction)


class AWSMean(AWS):
    """AWS with L_cl averaged over the batch's anchors (1/B, as Eq. 4 averages L_kd) instead of summed as Eq. 3 is
    printed. With the sum, L_cl at batch 16 weighs 16x more against the distillation anchor and the mutual
    information than with the mean; the paper's lr rule (base x batch / 64) is the one for mean losses. Kept
    beside `aws` so both readings can be compared; docs/results_ssl.md says which one the held-out data favour."""

    name = "aws-mean"
    reduction = "mean"

    @classmethod
    def display_name(cls, model=None) -> str:
        return super().display_name(model).replace("AWS", "AWS, L_cl batch mean", 1)


def aws_loss(f_t, logits_t, f_s, logits_s, reduction: str = "sum") -> torch.Tensor:
    return (contrastive(f_t, logits_t.detach(), reduction=reduction) + LAMBDA_KD * distillation(f_t, f_s)
            + LAMBDA_ML * mutual_learning(logits_t, logits_s))


def pair_weights(logits: torch.Tensor, k: int = TOP_K, n: int = TOP_N) -> torch.Tensor:
    """w_ij: +1 when the top-k classes of i and j overlap, -1 when their top-n sets are disjoint, else 0; the
    diagonal is 0 (no self-pairs)."""
    classes = logits.shape[1]
    topk = F.one_hot(logits.topk(min(k, classes), 1).indices, classes).sum(1).float()
    topn = F.one_hot(logits.topk(min(n, classes), 1).indices, classes).sum(1).float()
    w = (topk @ topk.t() > 0).float() - (topn @ topn.t() == 0).float()
    return w.fill_diagonal_(0)


def contrastive(f: torch.Tensor, logits: torch.Tensor, temperature: float = TEMPERATURE,
                reduction: str = "sum") -> torch.Tensor:
    """Eq. 3 over the batch's pairs (weights from the predictions, gradients through the features only), summed
    over the anchors i as printed, or their mean ("mean": 1/B, every anchor counted, weighted or not)."""
    if len(f) < 2:
        return f.sum() * 0
    w = pair_weights(logits)
    z = F.normalize(f, dim=1)
    s = (z @ z.t()) / temperature
    s = s.masked_fill(torch.eye(len(f), dtype=torch.bool, device=f.device), float("-inf"))
    logp = s.log_softmax(1).masked_fill(w == 0, 0.0)        # avoid 0 * -inf on the diagonal
    norm = w.abs().sum(1).clamp_min(1.0)
    per_anchor = -(w * logp).sum(1) / norm
    return per_anchor.sum() if reduction == "sum" else per_anchor.mean()


def distillation(f_t: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
    """Eq. 4: the target's normalised features stay near the frozen encoder's."""
    return (F.normalize(f_t, dim=1) - F.normalize(f_s, dim=1)).pow(2).sum(1).mean()


def mutual_information(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """IIC's I(p; q) of two batches of class distributions: the symmetrised joint P = mean_i p_i q_i^T."""
    joint = (p.t() @ q) / len(p)
    joint = ((joint + joint.t()) / 2).clamp_min(eps)
    pi, pj = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    return (joint * (joint.log() - pi.log() - pj.log())).sum()


def mutual_learning(logits_t: torch.Tensor, logits_s: torch.Tensor) -> torch.Tensor:
    """Eq. 5: g_ssl learns the target's hard labels; the target maximises its mutual information with p_ssl."""
    ce = F.cross_entropy(logits_s, logits_t.detach().argmax(1))
    mi = mutual_information(logits_t.softmax(1), logits_s.detach().softmax(1))
    return ce - mi
