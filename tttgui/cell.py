"""One cell of an evaluation: one corruption × severity × method over a set of images, and the sequential
runners that adapt it (the vectorised episodic runner is in tttgui.vectorized; both take a `Cell`).

Episodic: every image starts from the source weights with views drawn from a generator seeded by
(seed, image index), so an image's result does not depend on what ran before it, nor on which process ran it.
Online: one pass over the stream in the cell's order, in batches of `batch_size`, weights carried over and reset
at the start of the cell (the TTT-Online protocol); "before" is always the source model's prediction.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from tttgui.methods import DIVERGED, Adapter, decide, image_seed
from tttgui.results import ImageRow, image_row


@dataclass
class Cell:
    adapter: Adapter
    x: torch.Tensor                     # float NCHW, every image of the shift
    labels: np.ndarray                  # model class per image, -1: none
    indices: np.ndarray                 # data-set index per image
    order: np.ndarray                   # positions into x to run, in this order
    before: tuple[np.ndarray, np.ndarray]   # source predictions (-1: logits not finite) and confidences
    corruption: str
    severity: int
    seed: int
    batch_size: int = 1                 # online, offline, continual: images per update
    chunk: int = 1                      # episodic: images adapted at once (vectorised when above 1)
    device: torch.device = torch.device("cpu")
    progress: Callable[[int, str], None] | None = None
    should_stop: Callable[[], bool] = lambda: False
    epochs: int = 1                     # offline: passes over the cell's images (tttgui.protocols)
    memory_budget: int | None = None    # episodic vectorised: bytes a chunk may use (None: half the free memory)
    diagnose: bool = False              # episodic: record the TTT paper's diagnostic per labelled image

    @property
    def name(self) -> str:
        return f"{self.corruption}-{self.severity} {self.adapter.recipe.method}"

    def row(self, i: int, after, losses, seconds: float, status: str, steps: int | None = None,
            diagnostic=(None, None)) -> ImageRow:
        """The row of position i: after = (prediction, confidence) of the adapted model; steps: the updates it
        took part in (default: len(losses))."""
        r = self.adapter.recipe
        return image_row(corruption=self.corruption, severity=self.severity, method=r.method, protocol=r.protocol,
                         index=self.indices[i], label=self.labels[i], before=(self.before[0][i], self.before[1][i]),
                         after=after, losses=losses, seconds=seconds, status=status,
                         steps=steps, grad_cosine=diagnostic[0], loss_decrease=diagnostic[1])

    def tick(self, k: int) -> None:
        if self.progress:
            self.progress(k, self.name)


@torch.no_grad()
def predict_all(model, x_all: torch.Tensor, device, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Source-model predictions and confidences of every image (-1 and nan where the logits are not finite)."""
    preds, confs = [], []
    for i in range(0, len(x_all), batch):
        k, c, _ = decide(model(x_all[i:i + batch].to(device)))
        preds.append(k)
        confs.append(c)
    return np.concatenate(preds), np.concatenate(confs)


def run_episodic(cell: Cell) -> list[ImageRow]:
    """The one-image-at-a-time loop."""
    ad, rows = cell.adapter, []
    for i in cell.order:
        if cell.should_stop():
            break
        t0 = time.perf_counter()
        if ad.method.adapts and ad.recipe.steps > 0:
            x = cell.x[i:i + 1].to(cell.device)
            ad.reset()
            ad.seed(image_seed(cell.seed, int(cell.indices[i])))
            y = torch.tensor([int(cell.labels[i])], device=cell.device) if diagnosed(cell, i) else None
            nll_before = true_class_loss(ad.predict(x), y) if y is not None else None
            losses, status, cosine = [], "ok", None
            for k in range(ad.recipe.steps):
                up = ad.update(x, labels=y if k == 0 else None)   # the label only measures; it never steps
                if k == 0:
                    cosine = up.grad_cosine
                losses.append(up.loss)
                if up.status != "ok":
                    status = up.status
                    break
            decrease = nll_before - true_class_loss(ad.predict(x), y) if y is not None else None
            preds, confs, finite = ad.outcome(x)
            after, status = (preds[0], confs[0]), status if finite[0] else DIVERGED
        else:   # the source model's prediction (-1: its logits are not finite, a diverged row)
            losses, after, status, cosine, decrease = [], (cell.before[0][i], cell.before[1][i]), "ok", None, None
        rows.append(cell.row(i, after, losses, time.perf_counter() - t0, status, diagnostic=(cosine, decrease)))
        cell.tick(1)
    return rows


def diagnosed(cell: Cell, i: int) -> bool:
    return cell.diagnose and int(cell.labels[i]) >= 0


@torch.no_grad()
def true_class_loss(logits: torch.Tensor, label: torch.Tensor) -> float:
    """Cross-entropy of the true class (nats); nan when the logits are not finite."""
    return float(torch.nn.functional.cross_entropy(logits.float(), label))


def run_online(cell: Cell) -> list[ImageRow]:
    cell.adapter.reset()
    cell.adapter.seed(cell.seed)
    return stream(cell)


def stream(cell: Cell) -> list[ImageRow]:
    """The cell's images in order and in batches, from the adapter's state as it is (continual carries it)."""
    ad, rows = cell.adapter, []
    for start in range(0, len(cell.order), cell.batch_size):
        if cell.should_stop():
            break
        t0 = time.perf_counter()
        idx = cell.order[start:start + cell.batch_size]
        losses, status = [], "ok"
        if ad.method.adapts:
            x = cell.x[torch.from_numpy(np.asarray(idx))].to(cell.device)
            for _ in range(ad.recipe.steps):
                up = ad.update(x)
                losses.append(up.loss)
                if up.status != "ok":   # the adapter restored the source weights; the stream goes on
                    status = up.status
                    break
            preds, confs, finite = ad.outcome(x)
        else:
            preds, confs, finite = cell.before[0][idx], cell.before[1][idx], cell.before[0][idx] >= 0
        seconds = (time.perf_counter() - t0) / len(idx)
        for j, i in enumerate(idx):
            rows.append(cell.row(i, (preds[j], confs[j]), losses, seconds, status if finite[j] else DIVERGED))
        cell.tick(len(idx))
    return rows
