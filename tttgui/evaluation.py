"""The headless evaluation engine behind `tttgui eval` and the GUI's batch evaluation: error without and with
test-time adaptation, per corruption, severity and method, with one row per image.

Results are always last-iterate (no label ever selects a step). Episodic: every image starts from the source
weights with views drawn from a generator seeded by (seed, image index), so an image's result does not depend on
what ran before it (and a vectorised implementation can reproduce it). Online: one pass over the stream in a
seeded shuffled order, in batches of `batch_size`, weights carried over and reset at each corruption × severity
(the TTT-Online protocol); "before" is always the source model's prediction.
"""
from __future__ import annotations

import csv
import json
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tttgui.atomic import atomic_path, write_text
from tttgui.augment import to_float
from tttgui.errors import UserError
from tttgui.methods import DIVERGED, Adapter, MethodConfig, PROTOCOLS, decide, get_method, image_seed

CLEAN = "none"
SUMMARY_COLUMNS = ["corruption", "severity", "method", "protocol", "n", "error_before", "error_after",
                   "diverged"]
IMAGE_COLUMNS = ["corruption", "severity", "method", "protocol", "index", "label", "prediction_before",
                 "confidence_before", "prediction_after", "confidence_after", "loss_first", "loss_last", "steps",
                 "seconds", "status"]


@dataclass(frozen=True)
class EvalConfig:
    corruptions: tuple[str, ...] = (CLEAN,)
    severities: tuple[int, ...] = (5,)
    methods: tuple[str, ...] = ("source", "ttt")
    protocol: str = "episodic"
    batch_size: int = 1               # online: images per update
    steps: int | None = None          # None: each method's paper default (likewise lr, optimizer, views, params)
    lr: float | None = None
    optimizer: str | None = None
    views: int | None = None
    params: str | None = None
    seed: int = 0
    frost_dir: str | None = None
    chunk: int | None = None          # episodic: images adapted at once (None: per device; 1: sequential loop)

    def method_config(self, method: str) -> MethodConfig:
        return MethodConfig(method=method, steps=self.steps, lr=self.lr, optimizer=self.optimizer,
                            views=self.views, params=self.params, protocol=self.protocol, seed=self.seed)


@dataclass(frozen=True)
class ImageRow:
    corruption: str
    severity: int
    method: str
    protocol: str
    index: int
    label: int
    prediction_before: int
    confidence_before: float
    prediction_after: int
    confidence_after: float
    loss_first: float | None
    loss_last: float | None
    steps: int
    seconds: float
    status: str


@dataclass(frozen=True)
class SummaryRow:
    corruption: str
    severity: int
    method: str
    protocol: str
    n: int
    error_before: float | None        # percent, source model; None: images without labels
    error_after: float | None         # percent, after adaptation (last iterate); None likewise
    diverged: int = 0                 # images whose adaptation diverged (counted as errors in error_after)


@dataclass
class EvalResult:
    summary: list[SummaryRow] = field(default_factory=list)
    images: list[ImageRow] = field(default_factory=list)
    recipes: dict = field(default_factory=dict)
    cancelled: bool = False
    seconds: float = 0.0


def _episodic_runner(ad, model, cfg: EvalConfig, device):
    """The vectorised path (issue 6) when it applies and the chunk is above 1, else the sequential loop."""
    from tttgui import vectorized

    chunk = cfg.chunk if cfg.chunk is not None else vectorized.auto_chunk(device)
    if chunk > 1 and ad.method.adapts and ad.recipe.steps > 0 and vectorized.supports(model, ad.config):
        return vectorized.run_episodic
    return _run_episodic


def check_config(cfg: EvalConfig, model) -> None:
    """Validate everything before any work starts, so a typo fails in one line and not after an hour."""
    if cfg.protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {cfg.protocol!r}; expected episodic or online")
    if cfg.batch_size < 1:
        raise UserError(f"batch size {cfg.batch_size} is invalid; expected 1 or more")
    if cfg.chunk is not None and cfg.chunk < 1:
        raise UserError(f"chunk {cfg.chunk} is invalid; expected 1 (sequential) or more images at once")
    if not cfg.methods:
        raise UserError("no methods given; expected a comma list such as source,ttt")
    for s in cfg.severities:
        if not 1 <= int(s) <= 5:
            raise UserError(f"severity {s} is out of range; expected integers 1 to 5")
    for m in cfg.methods:
        cls = get_method(m)
        cls.resolve(cfg.method_config(cls.name))
        missing = [h for h in cls.requires if h not in model.spec.heads]
        if missing:
            raise UserError(f"method {cls.name} needs a model with the {', '.join(missing)} head; this "
                            f"checkpoint has heads {list(model.spec.heads) or 'none'}")
    if any(c != CLEAN for c in cfg.corruptions):
        names = corruption_names()
        bad = [c for c in cfg.corruptions if c != CLEAN and c not in names]
        if bad:
            raise UserError(f"unknown corruption(s) {', '.join(bad)}; expected none, all or names from: "
                            f"{', '.join(names)}")


def check_labels(labels, model) -> None:
    """Labels must index the model's classes (-1: no label); data labels are mapped by class name first
    (tttgui.data.labels), so anything else here would score every image as wrong."""
    n = model.spec.num_classes
    bad = [int(k) for k in np.asarray(labels).reshape(-1) if not -1 <= k < n]
    if bad:
        raise UserError(f"label {bad[0]} is outside the model's {n} classes; expected 0..{n - 1}, or -1 for an "
                        "image without a label")


def corruption_names() -> list[str]:
    try:
        from tttgui.corruptions import CORRUPTIONS
    except ImportError:
        raise UserError("corruptions are not available in this build; expected --corruptions none") from None
    return list(CORRUPTIONS)


def benchmark_corruptions() -> list[str]:
    try:
        from tttgui.corruptions import BENCHMARK_CORRUPTIONS
    except ImportError:
        raise UserError("corruptions are not available in this build; expected --corruptions none") from None
    return list(BENCHMARK_CORRUPTIONS)


def shifts(cfg: EvalConfig) -> list[tuple[str, int]]:
    out = []
    for c in cfg.corruptions:
        if c == CLEAN:
            out.append((CLEAN, 0))
        else:
            out += [(c, int(s)) for s in cfg.severities]
    return out


def evaluate(model, source_stats: dict, images: np.ndarray, labels: np.ndarray, indices: np.ndarray,
             cfg: EvalConfig, device, progress: Callable[[int, str], None] | None = None,
             should_stop: Callable[[], bool] = lambda: False) -> EvalResult:
    """images: uint8 N×H×W×3 (clean), labels and original data-set indices of length N. progress(k, text) is
    called after every k images; should_stop() is checked between images (the result is then partial)."""
    device = torch.device(device)
    check_config(cfg, model)
    check_labels(labels, model)
    model = model.to(device).eval()
    result = EvalResult()
    t0 = time.perf_counter()
    adapters = {}
    for m in cfg.methods:
        ad = Adapter(model, source_stats, cfg.method_config(m), device)
        adapters[ad.recipe.method] = ad
        result.recipes[ad.recipe.method] = ad.recipe.to_dict()
    order = np.arange(len(images))
    if cfg.protocol == "online":   # the paper shuffles the stream; a class-sorted folder would be non-i.i.d.
        order = np.random.default_rng(cfg.seed).permutation(len(images))
    try:
        for corruption, severity in shifts(cfg):
            shifted = images if corruption == CLEAN else corrupt_images(images, corruption, severity, cfg, device)
            x_all = to_float(torch.from_numpy(np.ascontiguousarray(shifted)))
            before = predict_all(model, x_all, device)
            for name, ad in adapters.items():
                run = _run_online if cfg.protocol == "online" else _episodic_runner(ad, model, cfg, device)
                rows = run(ad, x_all, labels, indices, order, before, cfg, device, progress, should_stop,
                           corruption, severity)
                result.images += rows
                if rows:
                    result.summary.append(summarise(rows))
                ad.reset()
                if should_stop():
                    result.cancelled = True
                    return result
    finally:
        for ad in adapters.values():   # the caller's model leaves as it came
            ad.reset()
        result.seconds = time.perf_counter() - t0
    return result


def corrupt_images(images, corruption, severity, cfg, device):
    from tttgui.corruptions import corrupt

    return corrupt(images, corruption, severity, seed=cfg.seed, frost_dir=cfg.frost_dir, device=device)


@torch.no_grad()
def predict_all(model, x_all: torch.Tensor, device, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Source-model predictions and confidences of every image (-1 and nan where the logits are not finite)."""
    preds, confs = [], []
    for i in range(0, len(x_all), batch):
        k, c, _ = decide(model(x_all[i:i + batch].to(device)))
        preds.append(k)
        confs.append(c)
    return np.concatenate(preds), np.concatenate(confs)


def _run_episodic(ad, x_all, labels, indices, order, before, cfg, device, progress, should_stop, corruption,
                  severity):
    rows = []
    for i in order:
        if should_stop():
            break
        t0 = time.perf_counter()
        x = x_all[i:i + 1].to(device)
        losses, status = [], "ok"
        if ad.method.adapts and ad.recipe.steps > 0:
            ad.reset()
            ad.seed(image_seed(cfg.seed, int(indices[i])))
            for _ in range(ad.recipe.steps):
                up = ad.update(x)
                losses.append(up.loss)
                if up.status != "ok":
                    status = up.status
                    break
            preds, confs, finite = ad.outcome(x)
            pred, conf = int(preds[0]), float(confs[0])
            status = status if finite[0] else DIVERGED
        else:
            pred, conf = int(before[0][i]), float(before[1][i])
            status = "ok" if pred >= 0 else DIVERGED   # -1: the source model's logits are not finite
        rows.append(_row(ad, corruption, severity, indices[i], labels[i], before, i, pred, conf, losses,
                         time.perf_counter() - t0, status))
        if progress:
            progress(1, f"{corruption}-{severity} {ad.recipe.method}")
    return rows


def _run_online(ad, x_all, labels, indices, order, before, cfg, device, progress, should_stop, corruption,
                severity):
    rows = []
    ad.reset()
    ad.seed(cfg.seed)
    for start in range(0, len(order), cfg.batch_size):
        if should_stop():
            break
        t0 = time.perf_counter()
        idx = order[start:start + cfg.batch_size]
        x = x_all[torch.from_numpy(idx)].to(device)
        losses, status = [], "ok"
        if ad.method.adapts:
            for _ in range(ad.recipe.steps):
                up = ad.update(x)
                losses.append(up.loss)
                if up.status != "ok":   # the adapter restored the source weights; the stream goes on
                    status = up.status
                    break
            preds, confs, finite = ad.outcome(x)
        else:
            preds, confs, finite = before[0][idx], before[1][idx], before[0][idx] >= 0   # -1: not finite
        seconds = (time.perf_counter() - t0) / len(idx)
        for j, i in enumerate(idx):
            rows.append(_row(ad, corruption, severity, indices[i], labels[i], before, i, int(preds[j]),
                             float(confs[j]), losses, seconds, status if finite[j] else DIVERGED))
        if progress:
            progress(len(idx), f"{corruption}-{severity} {ad.recipe.method}")
    return rows


def _row(ad, corruption, severity, index, label, before, i, pred, conf, losses, seconds, status) -> ImageRow:
    if status == DIVERGED:   # the restored weights' prediction is not this method's: no class, never a hit
        pred, conf = -1, float("nan")
    return ImageRow(corruption=corruption, severity=int(severity), method=ad.recipe.method,
                    protocol=ad.recipe.protocol, index=int(index), label=int(label),
                    prediction_before=int(before[0][i]), confidence_before=float(before[1][i]),
                    prediction_after=pred, confidence_after=conf,
                    loss_first=losses[0] if losses else None, loss_last=losses[-1] if losses else None,
                    steps=len(losses), seconds=seconds, status=status)


def summarise(rows: list[ImageRow]) -> SummaryRow:
    n = len(rows)
    wrong_before = sum(r.prediction_before != r.label for r in rows)
    diverged = sum(r.status == DIVERGED for r in rows)
    wrong_after = sum(r.status == DIVERGED or r.prediction_after != r.label for r in rows)
    r = rows[0]
    if any(row.label < 0 for row in rows):   # unlabelled images: predictions only, never an error rate
        return SummaryRow(r.corruption, r.severity, r.method, r.protocol, n, None, None, diverged)
    return SummaryRow(r.corruption, r.severity, r.method, r.protocol, n, round(100.0 * wrong_before / n, 4),
                      round(100.0 * wrong_after / n, 4), diverged)


def paired_difference(rows_a: list[ImageRow], rows_b: list[ImageRow]) -> tuple[float, float, float, int]:
    """Error of b minus error of a (percentage points) over the images both rows cover, with a 95% normal
    interval of the paired per-image differences: (difference, low, high, n). Rows match on
    (corruption, severity, index); use the "after" prediction of each."""
    key = lambda r: (r.corruption, r.severity, r.index)  # noqa: E731
    a = {key(r): r.prediction_after != r.label for r in rows_a}
    d = np.array([float(r.prediction_after != r.label) - float(a[key(r)]) for r in rows_b if key(r) in a])
    if len(d) == 0:
        return float("nan"), float("nan"), float("nan"), 0
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    mean = 100.0 * d.mean()
    return mean, mean - 100.0 * half, mean + 100.0 * half, len(d)


# -- outputs -------------------------------------------------------------------------------------------------
def write_outputs(out_dir, result: EvalResult, run_info: dict) -> Path:
    """DIR/summary.csv, DIR/images.csv, DIR/run.json, each written atomically."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out} ({exc.strerror}); expected a writable path") from None
    _write_csv(out / "summary.csv", SUMMARY_COLUMNS, [asdict(r) for r in result.summary])
    _write_csv(out / "images.csv", IMAGE_COLUMNS, [asdict(r) for r in result.images])
    info = {**run_info, "recipes": result.recipes, "cancelled": result.cancelled,
            "seconds": round(result.seconds, 3), "versions": library_versions()}
    write_text(out / "run.json", json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    return out


def _write_csv(path: Path, columns, rows) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: csv_cell(r[k]) for k in columns})


def csv_cell(v):
    """One CSV value: empty for None, 6 significant digits for floats (shared with the GUI's export)."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def library_versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("tttgui", "torch", "torchvision", "numpy", "timm", "pillow", "scipy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    out["cuda"] = torch.version.cuda
    return out


def table(result: EvalResult) -> str:
    """Error % per shift: the source model ("no adapt") and each adapting method, then the mean row and how
    many images diverged per method (all shifts; they count as errors)."""
    methods = list(dict.fromkeys(r.method for r in result.summary))
    keys = list(dict.fromkeys((r.corruption, r.severity) for r in result.summary))
    by = {(r.corruption, r.severity, r.method): r for r in result.summary}
    cols = ["no adapt"] + [m for m in methods if m != "source"]
    lines = [f"{'corruption':<20}{'sev':>4}" + "".join(f"{c:>10}" for c in cols)]
    sums = {c: [] for c in cols}
    for c, s in keys:
        any_row = next(by[(c, s, m)] for m in methods if (c, s, m) in by)
        vals = {"no adapt": any_row.error_before}
        vals.update({m: by[(c, s, m)].error_after for m in cols[1:] if (c, s, m) in by})
        for k, v in vals.items():
            if v is not None:
                sums[k].append(v)
        lines.append(f"{c:<20}{s if s else '-':>4}" + "".join(
            f"{'n/a' if vals[k] is None else format(vals[k], '.2f'):>10}" if k in vals else f"{'':>10}"
            for k in cols))
    if len(keys) > 1:
        lines.append(f"{'mean':<24}" + "".join(f"{np.mean(sums[k]):>10.2f}" if sums[k] else f"{'':>10}"
                                               for k in cols))
    div = {m: sum(r.diverged for r in result.summary if r.method == m) for m in methods}
    lines.append(f"{'diverged (images)':<24}" + f"{div.get('source', ''):>10}"
                 + "".join(f"{div[m]:>10}" for m in cols[1:]))
    return "\n".join(lines)


def row_fields(cls) -> list[str]:
    return [f.name for f in fields(cls)]
