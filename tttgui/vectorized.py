"""Episodic adaptation of many images at once, with results equal to the one-image-at-a-time path.

Every image of a chunk gets its own copy of the adapted parameters: the copies are stacked into tensors of shape
(K, ...) and the method's own `loss` runs under `torch.func.vmap` + `functional_call`, so each image sees only
its copy (a convolution with batched weights becomes one grouped convolution; GroupNorm is per sample). Because
the images are independent, the gradient of the summed per-image losses with respect to the stacked copies is
every image's own gradient, and the stock torch optimizers (element-wise: SGD, Adam, AdamW) stepping the stacked
tensors give every copy its own optimizer state. Views come from the method's own `draw` with one generator per
image seeded exactly as the sequential path seeds it, so the draws are identical.

Not vectorised (the caller falls back to the sequential path): BatchNorm models (batch statistics and running
buffers are shared state) and the online protocol (one carried model by definition).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from tttgui.cell import Cell
from tttgui.errors import UserError
from tttgui.methods.adapter import DIVERGED, decide, image_seed, make_optimizer
from tttgui.methods.base import MethodConfig
from tttgui.methods.registry import get_method
from tttgui.results import ImageRow

MB = 1024 * 1024
# per image, in input order: class probabilities after adaptation (N×C), the loss of every step taken, and
# the status ("ok" | DIVERGED, as tttgui.methods.adapter.Update)
Outcome = tuple[np.ndarray, list[tuple[float, ...]], list[str]]


@dataclass(frozen=True)
class VectorConfig:
    chunk: int = 32                    # most images adapted together (more gains nothing measurable on CPU)
    memory_budget: int | None = None   # bytes a chunk may use; None: a share of the device's free memory


def supports(model, config: MethodConfig) -> bool:
    """Whether this method/model/protocol can run vectorised (else the caller runs the sequential loop)."""
    if config.protocol != "episodic":
        return False
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class _Loss(nn.Module):
    """The method's loss as a module, so functional_call can substitute the adapted parameters."""

    def __init__(self, method, model):
        super().__init__()
        self.method, self.model = method, model

    def forward(self, batch):
        with self.method.train_mode(self.model):
            return self.method.loss(self.model, batch)


class _Predict(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


class VectorizedEpisodic:
    """Episodic adaptation of chunks of images with one method (its recipe resolved as the Adapter does)."""

    def __init__(self, model, source_stats: dict, config: MethodConfig, device, vconfig: VectorConfig = VectorConfig()):
        if vconfig.chunk < 1:
            raise UserError(f"chunk {vconfig.chunk} is invalid; expected 1 or more images")
        if not supports(model, config):
            raise UserError("vectorised adaptation needs the episodic protocol and a model without BatchNorm; "
                            "expected the sequential path for this run")
        self.model, self.config, self.vconfig = model, config, vconfig
        self.device = torch.device(device)
        cls = get_method(config.method)
        self.recipe = cls.resolve(config)
        self.method = cls(model, source_stats, self.recipe, self.device)
        self.named = [(n, p) for n, p in self.method.parameters()] if self.method.adapts else []
        self._loss = _Loss(self.method, model)
        self._predict = _Predict(model)

    # -- memory ------------------------------------------------------------------------------------------------
    def bytes_per_image(self, image: torch.Tensor) -> int:
        """Estimated memory one image adds to a chunk: saved activations of one update on its views (probed by
        a no-grad forward that sums every module output; x3 for saved inputs, gradients and temporaries) plus
        its parameter copy, gradient and two optimizer-state tensors."""
        total = 0

        def hook(_m, _i, out):
            nonlocal total
            if isinstance(out, torch.Tensor):
                total += out.numel() * out.element_size()

        handles = [m.register_forward_hook(hook) for m in self.model.modules()]
        try:
            with torch.no_grad():
                batch = self.method.draw(image, torch.Generator().manual_seed(0))
                self._loss(batch)
        finally:
            for h in handles:
                h.remove()
        views = sum(v.numel() * v.element_size() for v in batch.values() if isinstance(v, torch.Tensor))
        params = sum(p.numel() * p.element_size() for _, p in self.named)
        return 3 * total + 2 * views + 4 * params

    def chunk_size(self, image: torch.Tensor) -> int:
        """Images per chunk within the budget; an image estimated above it still runs, alone (the estimate is
        rough, and an actual out-of-memory error is caught and retried smaller)."""
        budget = self.vconfig.memory_budget or default_budget(self.device)
        return max(1, min(self.vconfig.chunk, budget // max(1, self.bytes_per_image(image))))

    # -- work --------------------------------------------------------------------------------------------------
    def run(self, images: torch.Tensor, seeds, progress=None, should_stop=lambda: False) -> Outcome:
        """Adapt every image of `images` (float NCHW) from the source weights, image i with a generator seeded
        `seeds[i]`; (probs, losses, status) in input order. progress(k) after every chunk; should_stop() between
        chunks (the outcome then covers the images done)."""
        if len(images) != len(seeds):
            raise UserError(f"{len(images)} images but {len(seeds)} seeds; expected one seed per image")
        probs, losses, status = [], [], []
        if not len(images):
            return np.zeros((0, self.model.spec.num_classes), np.float32), losses, status
        k = self.chunk_size(images[:1].to(self.device))
        work = lambda idx: self._chunk(images[idx[0]:idx[-1] + 1].to(self.device),  # noqa: E731
                                       [seeds[i] for i in idx])
        for idx, (p, l_, s) in in_chunks(np.arange(len(images)), k, work, should_stop):
            probs.append(p)
            losses += l_
            status += s
            if progress:
                progress(len(idx))
        if not probs:
            return np.zeros((0, self.model.spec.num_classes), np.float32), losses, status
        return np.concatenate(probs), losses, status

    def _chunk(self, x: torch.Tensor, seeds: list[int]) -> Outcome:
        n = len(x)
        losses = [[] for _ in range(n)]
        status = ["ok"] * n
        if not self.named or self.recipe.steps == 0:
            stacked = {}
        else:
            stacked = {f"model.{name}": p.detach().unsqueeze(0).repeat(n, *([1] * p.dim())).requires_grad_()
                       for name, p in self.named}
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
            active = torch.ones(n, dtype=torch.bool)
            opt = make_optimizer(list(stacked.values()), self.recipe)
            for _ in range(self.recipe.steps):
                batch, consts = _stack([self.method.draw(x[i:i + 1], g) for i, g in enumerate(gens)])
                values, stopped = self._step(stacked, opt, batch, consts, active)
                for i in range(n):
                    if active[i]:
                        losses[i].append(float(values[i]))
                        if stopped[i]:
                            status[i] = DIVERGED
                active &= ~stopped
                if not active.any():
                    break
        logits = self._logits(stacked, x)
        finite = decide(logits)[2]
        probs = logits.softmax(-1).cpu().numpy()
        return probs, [tuple(v) for v in losses], [s if ok else DIVERGED for s, ok in zip(status, finite)]

    def _step(self, stacked: dict, opt, batch: dict, consts: dict, active: torch.Tensor):
        """One update of every active copy. A copy whose loss, gradient or updated weights are not finite goes
        back to the source weights and stops (as Adapter.update's DIVERGED); stopped copies stay there.
        Returns the per-image losses (CPU) and which active images stop now."""
        params = list(stacked.values())
        with torch.enable_grad():
            loss_one = lambda p, b: functional_call(self._loss, p, ({**b, **consts},))  # noqa: E731
            with warnings.catch_warnings():   # ops without a batching rule fall back to a loop: slower, exact
                warnings.filterwarnings("ignore", message=".*batching rule.*")
                values = vmap(loss_one)(stacked, batch)
            grads = torch.autograd.grad(values.sum(), params, allow_unused=True)
        values = values.detach()
        ok = torch.isfinite(values).cpu() & active
        gnorm = torch.zeros(len(values), device=values.device)
        for g in grads:
            if g is not None:
                gnorm += g.detach().flatten(1).pow(2).sum(1)
        ok &= torch.isfinite(gnorm).cpu()
        for p, g in zip(params, grads):
            p.grad = torch.zeros_like(p) if g is None else torch.where(_mask(ok, p), g, 0.0)
        opt.step()
        for p in params:
            p.grad = None
        with torch.no_grad():
            finite = torch.stack([torch.isfinite(p.detach().flatten(1)).all(1) for p in params]).all(0).cpu()
            ok &= finite
            if not ok.all():   # also the copies stopped before: weight decay or momentum would move them
                for (_, src), p in zip(self.named, params):
                    p[~ok.to(p.device)] = src.detach()
        # the sequential loop records the loss, then stops after a non-finite loss, gradient or weight
        return values.cpu(), ~ok & active

    @torch.no_grad()
    def _logits(self, stacked: dict, x: torch.Tensor) -> torch.Tensor:
        if not stacked:
            return self.model(x)
        detached = {k: v.detach() for k, v in stacked.items()}
        return vmap(lambda p, xi: functional_call(self._predict, p, (xi[None],))[0])(detached, x)


def _mask(ok: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return ok.to(p.device).view(-1, *([1] * (p.dim() - 1)))


def _stack(batches: list[dict]) -> tuple[dict, dict]:
    """Per-image drawn batches -> stacked tensors (vmapped) and constants (equal across images)."""
    tensors, consts = {}, {}
    for key, value in batches[0].items():
        if isinstance(value, torch.Tensor):
            tensors[key] = torch.stack([b[key] for b in batches])
        else:
            consts[key] = value
    return tensors, consts


def run_episodic(cell: Cell) -> list[ImageRow]:
    """The cell's images adapted `cell.chunk` at a time: the rows of tttgui.cell.run_episodic (but seconds).
    The cell's adapter model is used read-only."""
    ad = cell.adapter
    ad.reset()   # the source weights: the sequential loop resets before every image
    vec = VectorizedEpisodic(ad.model, ad.method.stats, ad.config, cell.device, VectorConfig(chunk=cell.chunk,
                                                                                  memory_budget=cell.memory_budget))
    k = vec.chunk_size(cell.x[:1].to(cell.device))
    rows = []

    def work(idx):
        t0 = time.perf_counter()
        out = vec._chunk(cell.x[torch.from_numpy(np.asarray(idx))].to(cell.device),
                         seeds_for(cell.seed, cell.indices[idx]))
        return out, (time.perf_counter() - t0) / len(idx)

    for idx, ((probs, losses, status), seconds) in in_chunks(np.asarray(cell.order), k, work, cell.should_stop):
        for j, i in enumerate(idx):
            rows.append(cell.row(i, (int(probs[j].argmax()), float(probs[j].max())), losses[j], seconds, status[j]))
        cell.tick(len(idx))
    return rows


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (isinstance(exc, RuntimeError)
                                                             and "out of memory" in str(exc).lower())


def in_chunks(order, k: int, work, should_stop=lambda: False):
    """(idx, work(idx)) over `order`, k at a time. Out of memory: free the cache, halve k and redo the same
    images (results do not depend on the chunk: every image has its own seed); only an image that cannot run
    alone ends the run, in one line."""
    start = 0
    while start < len(order) and not should_stop():
        idx = order[start:start + k]
        try:
            out = work(idx)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled; the rest re-raised
            if not out_of_memory(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if k == 1:
                raise UserError("out of memory adapting a single image; expected fewer views, a smaller model, "
                                "or --device cpu") from None
            k = max(1, k // 2)
            continue
        yield idx, out
        start += len(idx)


def applies(cell: Cell) -> bool:
    """Whether the vectorised runner applies: a chunk above 1, an adapting method, a model without BatchNorm, and
    no diagnostic (the sequential loop records it)."""
    ad = cell.adapter
    return not cell.diagnose and cell.chunk > 1 and ad.method.adapts and ad.recipe.steps > 0 and supports(ad.model, ad.config)


def auto_chunk(device) -> int:
    """Images per vectorised pass when the user does not say: on CPU the grouped convolutions vmap makes are
    slower than one image's plain ones (measured 0.87x with 2 threads, 0.75x with 1 for ResNet-26-GN TTT), so
    1 (the sequential loop); on a GPU one image's 32 views leave it mostly idle, so 32 images at once."""
    return 1 if torch.device(device).type == "cpu" else VectorConfig.chunk


def default_budget(device: torch.device) -> int:
    """Half of the memory free now (CUDA: free plus reclaimable cached device memory; CPU: MemAvailable)."""
    if device.type == "cuda":   # free memory plus what torch's caching allocator holds but does not use
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int((free + cached) * 0.5)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 2 * 1024 ** 3


def seeds_for(seed: int, indices) -> list[int]:
    """Per-image generator seeds exactly as the sequential episodic loop seeds them."""
    return [image_seed(seed, int(i)) for i in indices]


__all__ = ["VectorConfig", "VectorizedEpisodic", "Outcome", "supports", "applies", "default_budget", "seeds_for",
           "run_episodic", "auto_chunk"]
