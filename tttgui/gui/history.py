"""History of adapted images and its export (no Qt): one row per adapted image, CSV + JSON sidecar.

A row is an "episode": one image under one shift and one method configuration, from step 0 to the last step
taken. Stepping the same image again updates its row; a new image, shift or method starts a new one.
"""
from __future__ import annotations

import csv
import io
import json
import math
import platform
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from tttgui.atomic import write_bytes
from tttgui.evaluation import csv_cell
from tttgui.methods import DIVERGED

# The documented CSV columns, in order (README "History CSV").
COLUMNS = ("row", "image", "index", "label", "corruption", "severity", "method", "protocol", "steps_config",
           "lr", "optimizer", "views", "params", "seed", "pred_before", "conf_before", "pred_after",
           "conf_after", "correct_before", "correct_after", "loss_first", "loss_last", "steps", "seconds",
           "status")


@dataclass(frozen=True)
class HistoryRow:
    row: int
    image: str            # data set source or file the image came from
    index: int
    label: str            # true class name, "" when unknown
    corruption: str
    severity: int
    method: str
    protocol: str
    steps_config: str     # "default" or the number asked for
    lr: str
    optimizer: str
    views: str
    params: str
    seed: int
    pred_before: str
    conf_before: float
    pred_after: str
    conf_after: float
    correct_before: str   # "yes" / "no" / "" (label unknown)
    correct_after: str
    loss_first: float | None
    loss_last: float | None
    steps: int
    seconds: float
    status: str           # "done" | "stopped" | "paused" | "diverged" (no prediction after, never correct)


def build_row(row: int, records, classes, *, image: str, index: int, label: int | None, corruption: str,
              severity: int, config, status: str = "done") -> HistoryRow:
    """Summarise an episode's records (step 0 first) as one history row."""
    first, last = records[0], records[-1]
    losses = [r.loss for r in records if r.loss is not None]
    if status == DIVERGED or last.status == DIVERGED or not math.isfinite(last.confidence):
        status = DIVERGED
    name = lambda i: "" if i is None else classes[i] if classes and 0 <= i < len(classes) else str(i)  # noqa: E731
    correct = lambda p: "" if label is None else ("yes" if p == label else "no")  # noqa: E731
    before, after = _prediction(first, False), _prediction(last, status == DIVERGED)
    default = lambda v: "default" if v is None else str(v)  # noqa: E731
    return HistoryRow(
        row=row, image=image, index=int(index), label="" if label is None else name(int(label)),
        corruption=corruption, severity=int(severity) if corruption != "none" else 0,
        method=config.method, protocol=config.protocol, steps_config=default(config.steps), lr=default(config.lr),
        optimizer=default(config.optimizer), views=default(config.views), params=default(config.params),
        seed=int(config.seed), pred_before=name(before[0]), conf_before=before[1],
        pred_after=name(after[0]), conf_after=after[1], correct_before=correct(before[0]),
        correct_after=correct(after[0]),
        loss_first=float(losses[0]) if losses else None, loss_last=float(losses[-1]) if losses else None,
        steps=int(last.step), seconds=float(sum(r.seconds for r in records[1:])), status=status)


def _prediction(record, diverged: bool) -> tuple[int | None, float]:
    """(class, confidence) of a record; none after a divergence or from non-finite probabilities, so that an
    argmax over NaN (class 0) is never shown or scored."""
    if diverged or not math.isfinite(record.confidence):
        return None, float("nan")
    return int(record.prediction), float(record.confidence)


def csv_text(rows) -> str:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        d = asdict(r)
        writer.writerow([csv_cell(d[c]) for c in COLUMNS])
    return buf.getvalue()


def sidecar(rows, *, classes, checkpoint: str, device: str, config: dict | None, extra: dict | None = None) -> dict:
    """The JSON written next to the CSV: configuration, library versions, seed, columns."""
    import numpy
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    try:
        import PySide6
        import pyqtgraph
        versions.update(pyside6=PySide6.__version__, pyqtgraph=pyqtgraph.__version__)
    except ImportError:
        pass
    try:
        from importlib.metadata import version
        versions["tttgui"] = version("tttgui")
    except Exception:  # running from a source tree without metadata
        versions["tttgui"] = "unknown"
    return {"columns": list(COLUMNS), "rows": len(rows), "classes": list(classes or []), "checkpoint": checkpoint,
            "device": device, "config": config or {}, "seeds": sorted({r.seed for r in rows}),
            "versions": versions, "platform": platform.platform(), **(extra or {})}


def export(path, rows, **meta) -> tuple[Path, Path]:
    """Write FILE.csv and FILE.json (sidecar) atomically; returns both paths."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path.with_suffix(".csv")
    csv_path = write_bytes(path, csv_text(rows).encode("utf-8"))
    json_path = write_bytes(path.with_suffix(".json"),
                            (json.dumps(sidecar(rows, **meta), indent=2, default=str) + "\n").encode("utf-8"))
    return csv_path, json_path


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(HistoryRow))
