"""A per-image adaptation session (no Qt): the object the GUI worker thread and the CLI drive.

    session = Session(model, payload["source_stats"], MethodConfig("ttt"), device)
    first = session.set_image(image_u8_hwc, label=3)      # step 0: before adaptation
    for record in session.run(10, should_stop=event.is_set):
        ...                                              # one immutable StepRecord per update
    session.result()                                     # before/after summary of this image
    session.reset()                                      # back to the source weights, bit-exact

Every record holds copied numpy arrays, never views of live tensors. Episodic: set_image resets the model and
reseeds the view generator from (seed, index), so the same image and settings always give the same run; online:
the weights and the generator carry over from image to image until reset(). A Session owns a private copy of
the model (made once, at construction), so several sessions may share one loaded model. Use one session from
one thread at a time.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from tttgui.augment import to_float
from tttgui.data.labels import UNLABELED
from tttgui.errors import UserError
from tttgui.methods import DIVERGED, Adapter, MethodConfig, Recipe, image_seed
from tttgui.methods.base import entropy
from tttgui.results import CLEAN, ImageRow, image_row
from tttgui.stats import capture_norm_outputs, channel_moments

__all__ = ["MethodConfig", "LayerStat", "StepRecord", "Session", "prepare_image", "episode_row"]


@dataclass(frozen=True)
class LayerStat:
    """Feature statistics of one norm layer's output on the un-augmented image (channel-wise over H, W)."""

    name: str
    mean_dist: float                 # RMS over channels of (channel mean - source channel mean), now
    var_dist: float                  # RMS over channels of (channel variance - source channel variance), now
    before_mean_dist: float          # the same two distances at step 0 of this image (before adaptation)
    before_var_dist: float
    channel_mean: np.ndarray         # (C,) now
    channel_var: np.ndarray          # (C,) now
    source_mean: np.ndarray | None   # (C,) from the checkpoint's source statistics (None if it has none)
    source_var: np.ndarray | None


@dataclass(frozen=True)
class StepRecord:
    step: int                        # 0 = before adaptation on this image, then 1, 2, ...
    loss: float | None               # self-supervised loss of the update that led here (None at step 0)
    entropy: float                   # of the prediction on the un-augmented image
    probs: np.ndarray                # (num_classes,) softmax, copied
    prediction: int
    confidence: float
    layers: tuple[LayerStat, ...]
    grad_norm: float | None          # L2 norm of the gradient over the adapted parameters
    seconds: float                   # wall time of this step (update + diagnostics)
    grad_cosine: float | None        # cos(self-supervised grad, classification grad) on the trunk; label only
    uses_label: bool                 # True when grad_cosine was computed from the true label
    status: str                      # "ok" | "diverged" (non-finite loss/gradient/weights/logits: stopped, restored)
    label: int | None = None         # diagnostics only; never used by the update itself
    correct: bool | None = None      # never True for a diverged step


def prepare_image(image, size: int) -> torch.Tensor:
    """uint8 HWC RGB (numpy or tensor) -> float 1x3xHxW in [0, 1] at the model's input size."""
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise UserError(f"image of shape {a.shape} and type {a.dtype} is not usable; expected uint8 H×W×3 RGB")
    x = to_float(torch.from_numpy(a.copy())[None])   # a copy: the caller's array may be read-only
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return x


class Session:
    def __init__(self, model, source_stats: dict | None, config: MethodConfig, device, copy_model: bool = True):
        self.device = torch.device(device)
        model = copy.deepcopy(model) if copy_model else model
        self.model = model.to(self.device).eval()
        self.config = config
        self.adapter = Adapter(self.model, source_stats or {}, config, self.device)
        self.recipe: Recipe = self.adapter.recipe
        # host copies once: a step then copies from the device once (logits and every layer's moments together)
        self._norm_stats = {name: {k: np.asarray(v.detach().cpu(), dtype=np.float32) for k, v in st.items()
                                   if k in ("mean", "var")}
                            for name, st in ((source_stats or {}).get("norm", {}) or {}).items()}
        self._x: torch.Tensor | None = None
        self._label: int | None = None
        self._index: int | None = None
        self._records: list[StepRecord] = []
        self._before: dict[str, tuple[float, float]] = {}

    # -- the contract -----------------------------------------------------------------------------------------
    @property
    def episodic(self) -> bool:
        return self.config.protocol == "episodic"

    @property
    def records(self) -> tuple[StepRecord, ...]:
        return tuple(self._records)

    def set_image(self, image_uint8_hwc, label: int | None = None, index: int | None = None) -> StepRecord:
        """Make this the image to adapt to (episodic: after a reset); returns the step-0 record."""
        self._x = prepare_image(image_uint8_hwc, self.model.spec.input_size).to(self.device)
        self._label = self._check_label(label)
        self._index = index
        if self.episodic:
            self.adapter.reset()
            self.adapter.seed(image_seed(self.config.seed, index or 0))
        return self._start()

    def step(self) -> StepRecord:
        """One update on freshly drawn views of the current image."""
        self._need_image()
        t0 = time.perf_counter()
        labels = None if self._label is None else torch.tensor([self._label], device=self.device)
        up = self.adapter.update(self._x, labels)
        record = self._observe(len(self._records), up.loss, up.grad_norm, up.grad_cosine, up.status, t0)
        self._records.append(record)
        return record

    def run(self, n: int, should_stop: Callable[[], bool] = lambda: False) -> Iterator[StepRecord]:
        """Up to n steps; checks should_stop before each and ends early after a non-"ok" step."""
        for _ in range(int(n)):
            if should_stop():
                return
            record = self.step()
            yield record
            if record.status != "ok":
                return

    def reset(self) -> None:
        """Back to the source weights (every adapted tensor and buffer bit-exact, fresh optimizer). The current
        image stays; episodic reseeds its views so a rerun repeats exactly, online restarts the stream."""
        self.adapter.reset()
        self.adapter.seed(image_seed(self.config.seed, self._index or 0) if self.episodic else self.config.seed)
        if self._x is not None:
            self._start()

    def views(self, k: int) -> np.ndarray:
        """k of the augmented views the method trains on, from the current image (uint8 NHWC). Uses its own
        generator, so looking at views never changes a run."""
        self._need_image()
        gen = torch.Generator().manual_seed(image_seed(self.config.seed + 7919, self._index or 0))
        out, have = [], 0
        with torch.no_grad():
            while have < k:
                v = self.adapter.method.display_views(self.adapter.method.draw(self._x, gen))
                out.append(v)
                have += len(v)
        v = torch.cat(out)[:k].clamp(0, 1)
        return (v.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).cpu().numpy().copy()

    def result(self, corruption: str = CLEAN, severity: int = 0) -> ImageRow:
        """This image's row (the row type of tttgui eval)."""
        self._need_image()
        return episode_row(self._records, method=self.recipe.method, protocol=self.recipe.protocol,
                           index=self._index, label=self._label, corruption=corruption, severity=severity)

    # -- internals ------------------------------------------------------------------------------------------
    def _check_label(self, label) -> int | None:
        # an index into the model's classes (map data labels by name first: tttgui.data.labels); -1 = none
        if label is None or int(label) == UNLABELED:
            return None
        n = self.model.spec.num_classes
        if not 0 <= int(label) < n:
            raise UserError(f"label {label} is outside the model's {n} classes; expected 0..{n - 1}, or None "
                            "for an image without a label")
        return int(label)

    def _need_image(self) -> None:
        if self._x is None:
            raise UserError("no image set; call set_image(image) before stepping")

    def _start(self) -> StepRecord:
        self._records = []
        self._before = {}
        record = self._observe(0, None, None, None, "ok", time.perf_counter())
        self._before = {s.name: (s.mean_dist, s.var_dist) for s in record.layers}
        record = _with_before(record, self._before)
        self._records.append(record)
        return record

    @torch.no_grad()
    def _observe(self, step, loss, grad_norm, cosine, status, t0) -> StepRecord:
        # the method's predict mode: Tent on BatchNorm predicts with the batch's statistics, as published
        with capture_norm_outputs(self.model) as outs, self.adapter.method.predict_mode(self.model):
            logits = self.model(self._x)
        if not bool(torch.isfinite(logits).all()):   # as Adapter.outcome: no prediction, back to the source
            status = DIVERGED
            if step > 0:
                self.adapter.reset()
        moments = [channel_moments(out) for out in outs.values()]
        parts = [logits.softmax(-1)[0].double(), entropy(logits)[:1].double()]
        parts += [t.double() for pair in moments for t in pair]
        host = torch.cat([t.flatten() for t in parts]).cpu().numpy()      # the step's one device->host copy
        sizes = np.cumsum([t.numel() for t in parts])[:-1]
        values = np.split(host, sizes)
        p, ent = values[0].copy(), float(values[1][0])
        layers = []
        for k, name in enumerate(outs):
            mean, var = values[2 + 2 * k].astype(np.float32), values[3 + 2 * k].astype(np.float32)
            src = self._norm_stats.get(name)
            s_mean = s_var = None
            md = vd = float("nan")
            if src is not None and "mean" in src and src["mean"].size == mean.size:
                s_mean, s_var = src["mean"].copy(), src["var"].copy()
                md = float(np.sqrt(np.mean((mean - s_mean) ** 2)))
                vd = float(np.sqrt(np.mean((var - s_var) ** 2)))
            bm, bv = self._before.get(name, (md, vd))
            layers.append(LayerStat(name, md, vd, bm, bv, mean.copy(), var.copy(), s_mean, s_var))
        pred = int(p.argmax())
        return StepRecord(step=step, loss=loss, entropy=ent, probs=p, prediction=pred,
                          confidence=float(p[pred]), layers=tuple(layers), grad_norm=grad_norm,
                          seconds=time.perf_counter() - t0, grad_cosine=cosine, uses_label=cosine is not None,
                          status=status, label=self._label,
                          correct=None if self._label is None else status != DIVERGED and pred == self._label)


def episode_row(records, *, method: str, protocol: str, index, label, corruption: str = CLEAN, severity: int = 0,
                status: str | None = None) -> ImageRow:
    """One image's row from its step records (step 0 first); status: the caller's word for how the run ended
    (default: the first non-"ok" step's, else "ok"). A diverged step anywhere makes the image diverged."""
    first, last = records[0], records[-1]
    losses = [r.loss for r in records[1:] if r.loss is not None]
    if status is None or any(r.status == DIVERGED for r in records):
        status = next((r.status for r in records if r.status != "ok"), status or "ok")
    before = (first.prediction, first.confidence) if math.isfinite(first.confidence) else (-1, float("nan"))
    return image_row(corruption=corruption, severity=severity, method=method, protocol=protocol,
                     index=-1 if index is None else index, label=label, before=before,
                     after=(last.prediction, last.confidence), losses=losses,
                     seconds=sum(r.seconds for r in records[1:]), status=status, steps=int(last.step))


def _with_before(record: StepRecord, before: dict) -> StepRecord:
    from dataclasses import replace

    layers = tuple(replace(s, before_mean_dist=before[s.name][0], before_var_dist=before[s.name][1])
                   for s in record.layers)
    return replace(record, layers=layers)
