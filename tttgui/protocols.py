"""The evaluation protocols beyond one recipe per cell: `offline` (TTT++'s) and `continual` (CoTTA's, as Han et
al. 2025 use it). Both run each method's online recipe (Method.resolve); tttgui.evaluation dispatches here.

offline: per cell, a fixed number of epochs over all its images in batches of the method's own size (TTT++:
256; online streams default to it too), shuffled per epoch by the seed, never reset within the cell and never
stopped or scheduled on test error (the original early-stops and lowers its lr on test error: a label choice we
do not make). The first FORWARD_ONLY_EPOCHS are forward passes without a step (the original's --bnepoch 2; TTT++
schedules its terms by epoch: Method.begin_epoch). The cell's predictions are those of a final pass over its
images after the last epoch.

continual: per method, one stream over the chosen corruptions in the paper's order at one severity, batch 16,
no reset and no boundary given to the method; each corruption's images in the online protocol's seeded order.
Rows and summaries stay per corruption. Resuming: a method whose stream finished is read back; a stream left
partly done restarts from its first corruption, since the state it carried (weights, optimizer, queue) is not
stored, so a resumed run still equals an uninterrupted one.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from tttgui.cell import Cell, stream
from tttgui.errors import UserError
from tttgui.methods import DIVERGED, decide
from tttgui.results import CLEAN, ImageRow, summarise

FORWARD_ONLY_EPOCHS = 2     # the original's --bnepoch 2
OFFLINE_EPOCHS = 500        # the original's --nepoch 500 (there an upper bound, before its early stop)
CONTINUAL_BATCH = 16        # Han et al. 2025 on CIFAR


def paper_order() -> list[str]:
    """CoTTA's order of the 15 corruptions (gaussian noise ... jpeg), which the benchmark list follows."""
    from tttgui.corruptions import BENCHMARK_CORRUPTIONS

    return list(BENCHMARK_CORRUPTIONS)


def stream_corruptions(corruptions) -> list[str]:
    """A continual stream's order: the paper's 15 first, then CIFAR-10-C's four held-out corruptions (validation,
    e.g. to choose a learning rate), then any other name as given."""
    from tttgui.corruptions import CORRUPTIONS

    order = list(CORRUPTIONS)
    return sorted(corruptions, key=lambda c: order.index(c) if c in order else len(order))


def batch_size(cfg, method_cls) -> int:
    """Images per update: --batch-size, else the protocol's (continual 16) or, online and offline, the method's
    own stream batch from its paper (tent 200, actmad 128, ttt++ 256, aws 16; 1 for TTT-Online and the rest)."""
    if cfg.batch_size is not None:
        return cfg.batch_size
    if cfg.protocol == "continual":
        return CONTINUAL_BATCH
    if cfg.protocol in ("offline", "online"):
        return (method_cls.batch_size if method_cls is not None else None) or 1
    return 1


def smallest_batch(cfg, method_cls, n: int) -> int:
    """The fewest images a method gets at once from a cell of n images: one episodically, else the last batch."""
    if cfg.protocol == "episodic":
        return 1
    size = batch_size(cfg, method_cls)
    return n % size or size


def epochs(cfg) -> int:
    return OFFLINE_EPOCHS if cfg.epochs is None else cfg.epochs


def record(cfg, d: dict) -> dict:
    """What run.json and the resume fingerprint hold for the protocol (online and offline without --batch-size:
    each method's own batch, in its recipe record)."""
    d = {k: v for k, v in d.items() if k != "epochs"}
    if cfg.protocol == "episodic":
        d["batch_size"] = 1 if cfg.batch_size is None else cfg.batch_size
    elif cfg.protocol == "online":    # None: each method's own, in its recipe record
        d["batch_size"] = cfg.batch_size
    elif cfg.protocol == "continual":
        d["batch_size"] = batch_size(cfg, None)
    else:   # batch_size None: each method's own, in its recipe record
        d.update(epochs=epochs(cfg), forward_only_epochs=FORWARD_ONLY_EPOCHS)
    return d


def recipe_record(cfg, method_cls, recipe: dict) -> dict:
    return {**recipe, "batch_size": batch_size(cfg, method_cls)} if cfg.protocol in ("offline", "online") else recipe


def check(cfg, method_classes) -> None:
    """The combinations a protocol cannot run, one line each."""
    if cfg.epochs is not None and cfg.protocol != "offline":
        raise UserError(f"--epochs is for --protocol offline; expected no --epochs with {cfg.protocol}")
    if cfg.protocol == "offline":
        if epochs(cfg) <= FORWARD_ONLY_EPOCHS:
            raise UserError(f"--epochs {epochs(cfg)} leaves no update (the first {FORWARD_ONLY_EPOCHS} are "
                            f"forward-only, as the original's --bnepoch); expected {FORWARD_ONLY_EPOCHS + 1} or more")
        loose = [c.name for c in method_classes if c.adapts and not c.batch_size]
        if loose and cfg.batch_size is None:
            raise UserError(f"method {loose[0]} has no batch size of its own for --protocol offline; expected "
                            "--batch-size N")
    for c in method_classes:
        if not c.adapts or cfg.protocol == "episodic":
            continue
        size = batch_size(cfg, c)
        if size < c.min_batch:
            raise UserError(f"{c.name} learns from the pairs of a batch and {cfg.protocol} gives it {size} image(s) "
                            f"per update; expected --batch-size {c.min_batch} or more (the window: B in Batch "
                            f"evaluation; the paper: {c.batch_size})")
        if c.lr_per_batch and cfg.settings.lr is None and size != c.batch_size:
            lr = c.online["lr"] * size / c.batch_size
            raise UserError(f"{c.name}'s learning rate follows the batch (base x batch / 64, {c.online['lr']:g} at "
                            f"{c.batch_size}); expected --lr {lr:g} (the window: LR) with --batch-size {size}")
    if cfg.protocol == "continual":
        if len(cfg.severities) != 1:
            raise UserError(f"--protocol continual runs one stream at one severity; expected one severity, not "
                            f"{','.join(map(str, cfg.severities))}")
        if CLEAN in cfg.corruptions:    # a stream of shifts (unknown names are check_config's to name)
            raise UserError("--protocol continual streams corruptions in the paper's order, not clean images; "
                            "expected corruption names (all: the 15 of the benchmark)")


def run_offline(cell: Cell) -> list[ImageRow]:
    """One offline cell (see the module docstring); stopped early it returns nothing (a cell is whole or not)."""
    ad, n, t0 = cell.adapter, len(cell.order), time.perf_counter()
    ad.reset()
    ad.seed(cell.seed)
    first, last = np.full(n, np.nan), np.full(n, np.nan)
    steps, diverged = np.zeros(n, int), np.zeros(n, bool)
    if ad.method.adapts:
        shuffle = np.random.default_rng(cell.seed)
        for epoch in range(cell.epochs):
            ad.method.begin_epoch(epoch + 1, FORWARD_ONLY_EPOCHS)
            perm = shuffle.permutation(n)
            for start in range(0, n, cell.batch_size):
                if cell.should_stop():
                    return []
                pos = perm[start:start + cell.batch_size]
                x = cell.x[torch.from_numpy(cell.order[pos])].to(cell.device)
                if epoch < FORWARD_ONLY_EPOCHS:
                    ad.observe(x)
                    continue
                for _ in range(ad.recipe.steps):
                    up = ad.update(x)
                    if up.status != "ok":   # the adapter restored the source weights; the epochs go on
                        diverged[pos] = True
                        break
                    first[pos] = np.where(steps[pos] == 0, up.loss, first[pos])
                    last[pos], steps[pos] = up.loss, steps[pos] + 1
            if cell.progress:
                cell.progress(0, f"{cell.name} epoch {epoch + 1}/{cell.epochs}")
    seconds = (time.perf_counter() - t0) / max(n, 1)
    rows = []
    for start in range(0, n, cell.batch_size):   # the final pass: these are the cell's predictions
        idx = cell.order[start:start + cell.batch_size]
        if ad.method.adapts:
            preds, confs, finite = decide(ad.predict(cell.x[torch.from_numpy(idx)].to(cell.device)))
        else:
            preds, confs, finite = cell.before[0][idx], cell.before[1][idx], cell.before[0][idx] >= 0
        for j, i in enumerate(idx):
            k = start + j
            losses = [] if steps[k] == 0 else [first[k], last[k]]
            status = DIVERGED if diverged[k] or not finite[j] else "ok"
            rows.append(cell.row(i, (preds[j], confs[j]), losses, seconds, status, steps=int(steps[k])))
        cell.tick(len(idx))
    return rows


def run_segment(cell: Cell) -> list[ImageRow]:
    """One corruption of a continual stream, from the state the previous one left."""
    return stream(cell)


def run_continual(adapters: dict, images_of, labels, indices, order, cfg, device, result, progress=None,
                  should_stop=lambda: False, store=None) -> None:
    """Fills `result` (rows and summaries per corruption, in run order). images_of(corruption, severity) gives
    (float images, source predictions)."""
    severity = cfg.severities[0]
    corruptions = stream_corruptions(cfg.corruptions)
    done: dict[tuple, list[ImageRow]] = {}
    for name, ad in adapters.items():
        keys = [(c, severity, name) for c in corruptions]
        stored = [store.load(k) if store is not None else None for k in keys]
        if all(rows is not None for rows in stored):
            done.update(zip(keys, stored))
            if progress:
                progress(sum(map(len, stored)), f"continual {name} (done before)")
            continue
        ad.reset()     # once per stream: never at a corruption boundary
        ad.seed(cfg.seed)
        try:
            for key in keys:
                x, before = images_of(key[0], severity)
                cell = Cell(ad, x, labels, indices, order, before, key[0], severity, cfg.seed,
                            batch_size(cfg, type(ad.method)), 1, device, progress, should_stop)
                done[key] = rows = run_segment(cell)
                whole = len(rows) == len(order)
                if whole and store is not None:
                    store.save(key, rows)
                if not whole or should_stop():
                    result.cancelled = True
                    break
        finally:
            ad.reset()
        if result.cancelled:
            break
    for key in [(c, severity, m) for c in corruptions for m in adapters]:
        if done.get(key):
            result.images += done[key]
            result.summary.append(summarise(done[key]))
