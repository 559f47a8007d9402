"""Feature statistics at the norm layers: capture during forward passes, and the source statistics a checkpoint
stores (per-layer channel and location-wise mean/variance of norm outputs, mean/covariance of pooled features and
of the projection head's un-normalised output, and TTT++'s source-vs-source divergence yardstick).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from tttgui.augment import crop_flip, to_float

TRANSFORM = "crop+flip"   # what statistics_sample applies; TTT++ gives its test views the same
ALIGN_BATCH = 1536        # TTT++'s queue size (cifar/scripts/run_ttt++_cifar10.sh): the batch it aligns
ALIGN_PAIRS = 16


@contextmanager
def capture_norm_outputs(model, keep_graph: bool = False):
    """Yield a dict name -> latest output tensor of every norm layer on the classification path."""
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.norm_layers():
        def hook(_m, _inp, out, name=name):
            outputs[name] = out if keep_graph else out.detach()
        handles.append(module.register_forward_hook(hook))
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


def channel_moments(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and variance of a norm output (N,C,H,W or N,L,C or N,C)."""
    if out.dim() == 4:
        dims = (0, 2, 3)
        return out.mean(dims), out.var(dims, unbiased=False)
    if out.dim() == 3:  # tokens (N, L, C)
        return out.mean((0, 1)), out.var((0, 1), unbiased=False)
    return out.mean(0), out.var(0, unbiased=False)


def statistics_sample(images_u8: torch.Tensor, k: int, seed: int, augment: bool = True) -> torch.Tensor:
    """The images source statistics are taken on: k drawn at random (seeded) from the whole set, because a data
    folder is sorted by class and its first k would be one or two classes; with the training augmentation
    (4-px zero-padded crop + flip), as ActMAD takes its clean statistics, since the test views the methods align
    are augmented the same way. uint8 NHWC in and out."""
    idx, g = statistics_draw(len(images_u8), k, seed)
    x = images_u8[idx]
    return statistics_augment(x, g) if augment else x


def statistics_draw(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    """The sorted positions of statistics_sample's k images among n, and the generator that then draws their
    crops: `tttgui stats` decodes only these images and gets the trainer's sample exactly."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:k].sort().values, g


def statistics_augment(x_u8: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """4-px zero-padded crop + flip of uint8 NHWC images, drawn from g (after statistics_draw)."""
    return crop_flip(x_u8.permute(0, 3, 1, 2), g).permute(0, 2, 3, 1).contiguous()


@torch.no_grad()
def source_statistics(model, images_u8: torch.Tensor, device, batch: int = 500, transform: str = TRANSFORM) -> dict:
    """Statistics of the source (training) distribution over the given images (see statistics_sample), model in
    eval mode. `transform` records how the images were augmented."""
    model.eval()
    sums: dict[str, list] = {}
    feat_sum = feat_outer = proj_sum = proj_outer = None
    n = 0
    kept: dict[str, list] = {"features": [], "projection": []}   # for the batch-vs-batch yardstick
    with capture_norm_outputs(model) as outs:
        for i in range(0, len(images_u8), batch):
            x = to_float(images_u8[i:i + batch]).to(device)
            f = model.features(x).double()
            k = len(x)
            for name, o in outs.items():
                o = o.double()
                if name not in sums:
                    sums[name] = [0, 0, 0, 0]   # channel sum, channel sumsq, location sum, location sumsq
                s = sums[name]
                red = (0, 2, 3) if o.dim() == 4 else ((0, 1) if o.dim() == 3 else (0,))
                s[0] = s[0] + o.sum(red)
                s[1] = s[1] + (o * o).sum(red)
                s[2] = s[2] + o.sum(0)
                s[3] = s[3] + (o * o).sum(0)
            feat_sum = f.sum(0) if feat_sum is None else feat_sum + f.sum(0)
            feat_outer = f.t() @ f if feat_outer is None else feat_outer + f.t() @ f
            kept["features"].append(f.float().cpu())
            if model.projector is not None:
                # TTT++ aligns head(ext(x)) before the L2 normalisation (ttt++.py: feat_ssh = head(ext(x)))
                z = model.projector.net(f.float()).double()
                kept["projection"].append(z.float().cpu())
                proj_sum = z.sum(0) if proj_sum is None else proj_sum + z.sum(0)
                proj_outer = z.t() @ z if proj_outer is None else proj_outer + z.t() @ z
            n += k
    norm = {}
    for name, (cs, cq, ls, lq) in sums.items():
        per = n * (ls.numel() // cs.numel())  # samples x positions per channel
        cm = cs / per
        lm = ls / n
        norm[name] = {"mean": cm.float(), "var": (cq / per - cm * cm).clamp_min(0).float(),
                      "loc_mean": lm.float(), "loc_var": (lq / n - lm * lm).clamp_min(0).float()}
    out = {"images": n, "transform": transform, "norm": norm,
           "features": {**_mean_cov(feat_sum, feat_outer, n), "align": pair_divergence(torch.cat(kept["features"]))}}
    if proj_sum is not None:
        out["projection"] = {**_mean_cov(proj_sum, proj_outer, n), "space": "head",
                             "align": pair_divergence(torch.cat(kept["projection"]))}
    return out


def coral(cov_a: torch.Tensor, cov_b: torch.Tensor) -> torch.Tensor:
    """TTT++'s CORAL: squared Frobenius distance of two covariances / 4d² (cifar/discrepancy.py)."""
    return (cov_a - cov_b).pow(2).sum() / (4 * cov_a.shape[0] ** 2)


def linear_mmd(mean_a: torch.Tensor, mean_b: torch.Tensor) -> torch.Tensor:
    return (mean_a - mean_b).pow(2).mean()


def covariance(x: torch.Tensor) -> torch.Tensor:
    xc = x - x.mean(0)
    return xc.t() @ xc / max(len(x) - 1, 1)


def pair_divergence(feats: torch.Tensor, batch: int = ALIGN_BATCH, pairs: int = ALIGN_PAIRS, seed: int = 0) -> dict:
    """Mean CORAL and linear MMD between two disjoint random source batches of `batch` samples: the yardstick
    TTT++ divides each alignment term by (cifar/offline.py, batches of the queue size). With fewer than 2 x batch
    samples the batches are half the samples; `batch` records the size measured (TTT++ rescales it)."""
    b = min(batch, len(feats) // 2)
    if b < 2:
        return {}
    g = torch.Generator().manual_seed(seed)
    x = feats.double()
    c = m = 0.0
    for _ in range(pairs):
        idx = torch.randperm(len(x), generator=g)
        a, bb = x[idx[:b]], x[idx[b:2 * b]]
        c += float(coral(covariance(a), covariance(bb)))
        m += float(linear_mmd(a.mean(0), bb.mean(0)))
    return {"batch": b, "coral": c / pairs, "mmd": m / pairs, "pairs": pairs}


def _mean_cov(s, outer, n):
    mean = s / n
    cov = (outer - n * torch.outer(mean, mean)) / max(n - 1, 1)
    return {"mean": mean.float(), "cov": cov.float()}
