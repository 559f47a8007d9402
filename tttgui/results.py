"""The result layer: one per-image row, one summary, one writer for CSV + JSON.

`tttgui eval`, the window's batch evaluation and history, sessions and the benchmarks all record an adapted image
as an `ImageRow` and write tables through `write_csv` / `write_json` with `run_info` (versions, command,
configuration). Correctness comes from the row (its status and label), never from comparing a prediction with a
label directly: label -1 means no label, prediction -1 means the adaptation diverged.
"""
from __future__ import annotations

import csv
import io
import json
import math
import platform
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from tttgui.atomic import write_text
from tttgui.data.labels import UNLABELED
from tttgui.errors import UserError
from tttgui.methods import DIVERGED

CLEAN = "none"
OK = "ok"


@dataclass(frozen=True)
class ImageRow:
    corruption: str
    severity: int
    method: str
    protocol: str
    index: int
    label: int                        # -1: no label
    prediction_before: int            # -1: the source model's logits were not finite
    confidence_before: float
    prediction_after: int             # -1: diverged
    confidence_after: float
    loss_first: float | None
    loss_last: float | None
    steps: int
    seconds: float
    status: str                       # OK | DIVERGED (the window's history also has stopped/paused)
    # The TTT paper's diagnostic (episodic, `diagnose`): cosine of the self-supervised and classification
    # gradients on the shared trunk at the first step, and how much adaptation lowered the true class's
    # cross-entropy (before − after, nats). Both use the label, which never enters the update.
    grad_cosine: float | None = None
    loss_decrease: float | None = None

    @property
    def labeled(self) -> bool:
        return self.label >= 0

    @property
    def correct_before(self) -> bool | None:
        return None if not self.labeled else self.prediction_before >= 0 and self.prediction_before == self.label

    @property
    def correct_after(self) -> bool | None:
        if not self.labeled:
            return None
        return self.status != DIVERGED and self.prediction_after >= 0 and self.prediction_after == self.label


IMAGE_COLUMNS = [f.name for f in fields(ImageRow)]


def image_row(*, corruption: str, severity: int, method: str, protocol: str, index, label, before, after,
              losses, seconds: float, status: str, steps: int | None = None, grad_cosine: float | None = None,
              loss_decrease: float | None = None) -> ImageRow:
    """The one way rows are made: `before`/`after` are (prediction, confidence); a diverged image (or one whose
    confidence is not finite) keeps no prediction after, so it can never count as a hit."""
    pred, conf = int(after[0]), float(after[1])
    if status == DIVERGED or pred < 0 or not math.isfinite(conf):
        status, pred, conf = DIVERGED, -1, float("nan")
    losses = list(losses)
    return ImageRow(corruption=corruption, severity=int(severity) if corruption != CLEAN else 0, method=method,
                    protocol=protocol, index=int(index), label=UNLABELED if label is None else int(label),
                    prediction_before=int(before[0]), confidence_before=float(before[1]),
                    prediction_after=pred, confidence_after=conf,
                    loss_first=float(losses[0]) if losses else None, loss_last=float(losses[-1]) if losses else None,
                    steps=len(losses) if steps is None else int(steps), seconds=float(seconds), status=status,
                    grad_cosine=None if grad_cosine is None else float(grad_cosine),
                    loss_decrease=None if status == DIVERGED or loss_decrease is None else float(loss_decrease))


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


SUMMARY_COLUMNS = [f.name for f in fields(SummaryRow)]


def summarise(rows: list[ImageRow]) -> SummaryRow:
    r, n = rows[0], len(rows)
    diverged = sum(row.status == DIVERGED for row in rows)
    if not all(row.labeled for row in rows):   # unlabelled images: predictions only, never an error rate
        return SummaryRow(r.corruption, r.severity, r.method, r.protocol, n, None, None, diverged)
    wrong_before = sum(not row.correct_before for row in rows)
    wrong_after = sum(not row.correct_after for row in rows)
    return SummaryRow(r.corruption, r.severity, r.method, r.protocol, n, round(100.0 * wrong_before / n, 4),
                      round(100.0 * wrong_after / n, 4), diverged)


def summaries(rows: list[ImageRow]) -> list[SummaryRow]:
    """One summary per (corruption, severity, method), in the order the rows first name them."""
    groups: dict[tuple, list[ImageRow]] = {}
    for r in rows:
        groups.setdefault((r.corruption, r.severity, r.method), []).append(r)
    return [summarise(g) for g in groups.values()]


USE_SHARE = 0.01


def classes_in_use(predictions) -> int | None:
    """How many classes get at least USE_SHARE of `predictions` (class indices; -1, a diverged image, counts in
    the total but for no class): 10 on CIFAR-10 for a healthy model, 1 or 2 where adaptation collapsed. None for
    no predictions."""
    p = np.asarray(list(predictions), dtype=np.int64)
    if p.size == 0:
        return None
    counts = np.bincount(p[p >= 0], minlength=1)
    return int((counts >= USE_SHARE * p.size).sum())


def mean_interval(d, groups=None) -> tuple[float, float, float]:
    """Mean of d with its 95 % normal interval: (mean, low, high). Observations of the same group (one image under
    several corruptions) are not independent, so the variance is the cluster-robust one, summing residuals within
    each group first; with one observation a group it is the plain s^2 / n."""
    d = np.asarray(d, dtype=float)
    if len(d) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(d.mean())
    groups = np.arange(len(d)) if groups is None else np.asarray(groups)
    _, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=d - mean)
    if len(sums) < 2:
        return mean, float("nan"), float("nan")
    half = 1.96 * np.sqrt(len(sums) / (len(sums) - 1) * (sums ** 2).sum()) / len(d)
    return mean, mean - half, mean + half


def paired_difference(rows_a: list[ImageRow], rows_b: list[ImageRow]) -> tuple[float, float, float, int]:
    """Error of b minus error of a (percentage points) over the labelled images both cover, with a 95% normal
    interval of the paired per-image differences: (difference, low, high, n). Rows match on
    (corruption, severity, index); each row's own correctness after adaptation is used. The same image under
    several corruptions is one cluster of the interval (its outcomes go together), not independent pairs."""
    key = lambda r: (r.corruption, r.severity, r.index)  # noqa: E731
    a = {key(r): not r.correct_after for r in rows_a if r.labeled}
    both = [r for r in rows_b if r.labeled and key(r) in a]
    d = np.array([float(not r.correct_after) - float(a[key(r)]) for r in both])
    mean, low, high = mean_interval(d, [r.index for r in both])
    return 100.0 * mean, 100.0 * low, 100.0 * high, len(d)


# -- writing ---------------------------------------------------------------------------------------------------
def csv_cell(v):
    """One CSV value: empty for None, 6 significant digits for floats."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def csv_text(columns, rows) -> str:
    """rows: dataclasses or dicts holding at least `columns`."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        d = r if isinstance(r, dict) else asdict(r)
        w.writerow([csv_cell(d[c]) for c in columns])
    return buf.getvalue()


def write_csv(path, columns, rows) -> Path:
    return write_text(path, csv_text(columns, rows))


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_rows(path) -> list[ImageRow]:
    """images.csv (or a cell file) back as rows; the inverse of write_csv for IMAGE_COLUMNS. Files written before
    the diagnostic columns existed read back with them empty."""
    types = {f.name: f.type for f in fields(ImageRow)}
    optional = {"grad_cosine", "loss_decrease"}
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for d in csv.DictReader(f):
            out.append(ImageRow(**{k: _parse(d[k], types[k]) for k in IMAGE_COLUMNS if k in d or k not in optional}))
    return out


def diagnostic(rows) -> tuple[np.ndarray, np.ndarray, float]:
    """(gradient cosines, loss decreases, Pearson r) of the rows that carry the TTT paper's diagnostic; r is nan
    with fewer than 3 points or no spread."""
    pts = [(r.grad_cosine, r.loss_decrease) for r in rows if r.grad_cosine is not None and r.loss_decrease is not None
           and math.isfinite(r.grad_cosine) and math.isfinite(r.loss_decrease)]
    x = np.array([p[0] for p in pts], float)
    y = np.array([p[1] for p in pts], float)
    if len(pts) < 3 or x.std() == 0 or y.std() == 0:
        return x, y, float("nan")
    return x, y, float(np.corrcoef(x, y)[0, 1])


def _parse(text: str, kind: str):
    if "None" in kind and text == "":
        return None
    if kind.startswith("int"):
        return int(text)
    if kind.startswith("float"):
        return float(text)
    return text


def library_versions() -> dict:
    import importlib.metadata as md

    import torch

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("tttgui", "torch", "torchvision", "numpy", "timm", "pillow", "scipy", "tqdm"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:   # a source tree without metadata
            out[name] = None
    out["cuda"] = torch.version.cuda
    out["cudnn"] = torch.backends.cudnn.version()
    for name in ("PySide6", "pyqtgraph"):   # recorded when the window runs; the core never imports them
        if name in sys.modules:
            out[name.lower()] = getattr(sys.modules[name], "__version__", None)
    return out


def run_info(command: str, config: dict, **extra) -> dict:
    """What every JSON beside a result table holds: the command, the configuration and the versions."""
    return {"command": command, "config": config, "versions": library_versions(), **extra}


def write_outputs(out_dir, summary: list[SummaryRow], images: list[ImageRow], info: dict) -> Path:
    """DIR/summary.csv, DIR/images.csv and DIR/run.json (info as run_info made it), each written atomically.
    An earlier run.json goes first and the new one comes last: a write that fails half-way never leaves a run.json
    describing tables it did not write."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").unlink(missing_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out} ({exc.strerror}); expected a writable path") from None
    write_csv(out / "summary.csv", SUMMARY_COLUMNS, summary)
    write_csv(out / "images.csv", IMAGE_COLUMNS, images)
    write_json(out / "run.json", info)
    return out


def table(summary: list[SummaryRow]) -> str:
    """Error % per shift: the source model ("no adapt") and each adapting method, then the mean row and how
    many images diverged per method (all shifts; they count as errors)."""
    methods = list(dict.fromkeys(r.method for r in summary))
    keys = list(dict.fromkeys((r.corruption, r.severity) for r in summary))
    by = {(r.corruption, r.severity, r.method): r for r in summary}
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
    div = {m: sum(r.diverged for r in summary if r.method == m) for m in methods}
    lines.append(f"{'diverged (images)':<24}" + f"{div.get('source', ''):>10}"
                 + "".join(f"{div[m]:>10}" for m in cols[1:]))
    return "\n".join(lines)
