"""History of adapted images and its export (no Qt): one row per adapted image, CSV + JSON sidecar, written by
the result layer's writer (tttgui.results) with the same versions and configuration record as tttgui eval.

A row is an "episode": one image under one shift and one method configuration, from step 0 to the last step
taken. Stepping the same image again updates its row; a new image, shift or method starts a new one.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, fields
from pathlib import Path

from tttgui.results import run_info, write_csv, write_json
from tttgui.session import episode_row

# The documented CSV columns, in order (README "History CSV").
COLUMNS = ("row", "checkpoint", "image", "index", "label", "corruption", "severity", "method", "protocol",
           "steps_config", "lr", "optimizer", "views", "params", "seed", "pred_before", "conf_before", "pred_after",
           "conf_after", "correct_before", "correct_after", "loss_first", "loss_last", "steps", "seconds",
           "status")

# What each column means, for the table's header tooltips (the headers stay the export's names).
COLUMN_HELP = {
    "row": "order in this session's history",
    "image": "the image: its file in the data set (hover: the full path; the export has the data set or file)",
    "checkpoint": "the model that adapted (file name; the full path on hover and in the export)",
    "index": "the image's index in its data set", "label": "true class (empty when unknown)",
    "corruption": "corruption applied before adaptation", "severity": "corruption severity, 1-5",
    "method": "adaptation method (hover a cell for its full name)", "protocol": "episodic (reset per image) or online",
    "steps_config": "steps asked for: a number, or default (the method's own)", "lr": "learning rate that ran",
    "optimizer": "optimizer that ran", "views": "augmented views per step", "params": "parameters that adapt",
    "seed": "seed of the method's random draws (views, augmentations)", "pred_before": "prediction before adaptation",
    "conf_before": "confidence (softmax) of the prediction before", "pred_after": "prediction after adaptation",
    "conf_after": "confidence (softmax) of the prediction after", "correct_before": "prediction before is the label",
    "correct_after": "prediction after is the label", "loss_first": "the method's loss (no label) at the first step",
    "loss_last": "the method's loss (no label) at the last step", "steps": "steps that ran",
    "seconds": "wall time of the adaptation", "status": "done, stopped, paused or diverged (no prediction after)",
}


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
    lr: str               # lr, optimizer, views, params: the resolved values that ran (the method's defaults
    optimizer: str        # filled in), never "default"
    views: str
    params: str           # the parameters that adapt, in words (e.g. "trunk + rotation head")
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
    checkpoint: str = ""  # path of the model that adapted (a session may load several)
    item: str = ""        # the image as its data set names it (its file; "source[i]" without files). The table
                          # shows it; not a CSV column (`image` and `index` name the image there)


def build_row(row: int, records, classes, *, image: str, index: int, label: int | None, corruption: str,
              severity: int, config, status: str = "done", checkpoint: str = "", item: str = "") -> HistoryRow:
    """Summarise an episode's records (step 0 first) as one history row: the image's ImageRow (tttgui.results,
    as tttgui eval makes it) shown with class names and the configuration that ran (resolved by the method)."""
    from tttgui.methods import get_method

    recipe = get_method(config.method).resolve(config)
    r = episode_row(records, method=config.method, protocol=config.protocol, index=index, label=label,
                    corruption=corruption, severity=severity, status=status)
    name = lambda i: "" if i < 0 else classes[i] if classes and i < len(classes) else str(i)  # noqa: E731
    yes = lambda c: "" if c is None else ("yes" if c else "no")  # noqa: E731
    default = lambda v: "default" if v is None else str(v)  # noqa: E731
    return HistoryRow(
        row=row, image=image, index=r.index, label=name(r.label), corruption=r.corruption, severity=r.severity,
        method=r.method, protocol=r.protocol, steps_config=default(config.steps), lr=f"{recipe.lr:g}",
        optimizer=recipe.optimizer, views=str(recipe.views), params=recipe.param_set,
        seed=int(config.seed), pred_before=name(r.prediction_before), conf_before=r.confidence_before,
        pred_after=name(r.prediction_after), conf_after=r.confidence_after, correct_before=yes(r.correct_before),
        correct_after=yes(r.correct_after), loss_first=r.loss_first, loss_last=r.loss_last, steps=r.steps,
        seconds=r.seconds, status=r.status, checkpoint=checkpoint, item=item)


def image_text(row: HistoryRow) -> str:
    """The image as the History table shows it, on one line: its file within the data folder (bird/0003.png), the
    file's name for an image opened on its own, else the data set's last path part and the index."""
    source, item = row.image, row.item
    if item:
        try:
            inside = Path(item).relative_to(source).as_posix() if source else "."
        except ValueError:
            inside = ""
        if inside and inside != ".":
            return inside
        if not (source and item.startswith(source)) or item == source:
            return Path(item).name or item
    return f"{Path(source.rstrip('/')).name or source} #{row.index}"


def sidecar(rows, *, classes, checkpoint: str, device: str, config: dict | None, extra: dict | None = None) -> dict:
    """The JSON written next to the CSV: what tttgui eval's run.json holds (command, configuration, versions)
    plus the seed, columns and classes."""
    return {**run_info("tttgui (window history export)", config or {}, columns=list(COLUMNS), rows=len(rows),
                       classes=list(classes or []), checkpoint=checkpoint, device=device,
                       seeds=sorted({r.seed for r in rows}), platform=platform.platform()), **(extra or {})}


SETTING_COLUMNS = ("checkpoint", "method", "protocol", "steps_config", "lr", "optimizer", "views", "params", "seed")


def row_settings(rows) -> dict:
    """The sidecar's configuration: each distinct setting the rows ran with (as the CSV's columns hold them) and
    which rows used it; never the Method panel's present values, which may have been edited since."""
    groups: dict[tuple, list[int]] = {}
    for r in rows:
        groups.setdefault(tuple(getattr(r, c) for c in SETTING_COLUMNS), []).append(r.row)
    return {"settings": [{**dict(zip(SETTING_COLUMNS, key)), "rows": numbers} for key, numbers in groups.items()]}


def export(path, rows, **meta) -> tuple[Path, Path]:
    """Write FILE.csv and FILE.json (sidecar) atomically; returns both paths."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path.with_suffix(".csv")
    return write_csv(path, COLUMNS, rows), write_json(path.with_suffix(".json"), sidecar(rows, **meta))


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(HistoryRow))


def accuracy_by_method(rows) -> list[tuple[str, int, int, int]]:
    """(method, labelled rows, correct before, correct after) per method, in the order rows first name them;
    rows without a label are left out (they have no accuracy)."""
    out: dict[str, list[int]] = {}
    for r in rows:
        if r.correct_before == "":
            continue
        n = out.setdefault(r.method, [0, 0, 0])
        n[0] += 1
        n[1] += r.correct_before == "yes"
        n[2] += r.correct_after == "yes"
    return [(m, n, b, a) for m, (n, b, a) in out.items()]


def accuracy_text(rows) -> str:
    parts = [f"{m} {b}/{n} → {a}/{n} ({100 * b / n:.0f}% → {100 * a / n:.0f}%)"
             for m, n, b, a in accuracy_by_method(rows)]
    return ("Accuracy before → after: " + "; ".join(parts)) if parts else "No labelled rows: no accuracy"
