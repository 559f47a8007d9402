"""Batch evaluation: a grid of corruptions × severities × methods over N images, through the same engine as
`tttgui eval` (run on the worker thread), with progress and Cancel; unreadable images are skipped and listed; the
grid is drawn as a heatmap (tttgui.gui.heatmap) and exported as the files `tttgui eval` writes."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Slot
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea,
                               QSizePolicy, QSpinBox, QVBoxLayout, QWidget)

from tttgui.gui.batch_input import is_release, skipped_record
from tttgui.gui.checklist import CheckList
from tttgui.gui.heatmap import Heatmap
from tttgui.gui.scatter import DiagnosticPlot


def summary_line(s, names=None) -> str:
    """One shift × method of a batch: errors ('n/a' without labels) and the diverged count. `names`: the
    method's name as the user reads it, by registry name."""
    pct = lambda v: "n/a" if v is None else f"{v:.1f}%"  # noqa: E731
    return (f"{s.corruption} s{s.severity}, {(names or {}).get(s.method, s.method)} ({s.protocol}), n={s.n}: "
            "error without adaptation "
            f"{pct(s.error_before)}, with {pct(s.error_after)}; diverged {s.diverged}")


def batch_dataset(dataset, severity: int):
    """What a batch evaluates: the data set, or of a corruption release (CIFAR-10-C) the block of rows of the
    chosen severity, whose images are corrupted already (so the batch does not corrupt them again)."""
    if getattr(dataset, "corruption", None) is None or getattr(dataset, "severity", None) is not None:
        return dataset
    from tttgui.data.corrupted import CorruptionDataset

    return CorruptionDataset(dataset.root, dataset.corruption, severity, classes=list(dataset.classes))



def diverged(n: int) -> str:
    return f" (diverged {n})" if n else ""


def batch_text(run, names=None) -> str:
    """What the summary says after a batch: one cell in full, a grid as mean errors per method; then what was
    cancelled and which images could not be read."""
    res = run.result
    names = names or {}
    if len(res.summary) == 1:
        text = summary_line(res.summary[0], names)
    elif res.summary:
        by = {}
        for s in res.summary:
            by.setdefault(s.method, []).append(s)
        mean = lambda v: "n/a" if any(x is None for x in v) else f"{np.mean(v):.1f}%"  # noqa: E731
        text = f"{len(res.summary)} cells of {run.asked} images; mean error without adaptation " + mean(
            [s.error_before for s in res.summary]) + "; with: " + ", ".join(
            f"{names.get(m, m)} {mean([s.error_after for s in ss])}" + diverged(sum(s.diverged for s in ss))
            for m, ss in by.items())
    else:
        text = "no images evaluated"
    text += f" ({res.seconds:.1f} s)"
    if run.cancelled:
        text = "Cancelled — partial result. " + text
    if run.skipped:
        first = "; ".join(why for _, why in run.skipped[:3])
        more = f" and {len(run.skipped) - 3} more" if len(run.skipped) > 3 else ""
        text += (f"\nSkipped {len(run.skipped)} unreadable image(s) (index "
                 f"{', '.join(str(i) for i, _ in run.skipped[:10])}): {first}{more}")
    return text


class WrappedLabel(QLabel):
    """A word-wrapped label as tall as its text at the width it has. A plain one asks its layout for the height
    of its text at its minimum width, which made the Batch tab scroll at 1280 x 720 once the summary named a few
    long methods ("AWS, L_cl batch mean (linear classifier)")."""

    def __init__(self, text: str = "", parent=None):
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def hasHeightForWidth(self) -> bool:
        return False

    def _height(self) -> int:
        return super().heightForWidth(max(self.width(), 100))

    def sizeHint(self):
        return QSize(100, self._height())

    def minimumSizeHint(self):
        return QSize(0, self._height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self.updateGeometry()


class BatchPanel(QWidget):
    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.window = window
        self.results: dict[tuple[str, int], tuple[float, float, int]] = {}   # shift -> (before %, after %, n)
        self.running = False
        self.custom = False       # the grid follows the Shift and Method panels until the user ticks in it
        self.corruptions = CheckList("corruptions")
        self.severities = CheckList("severities")
        self.methods = CheckList("methods")
        for box in (self.corruptions, self.severities, self.methods):
            box.menu().aboutToShow.connect(self.refresh_choices)
            box.menu().triggered.connect(self._ticked)
        self.count = QSpinBox()
        self.count.setRange(1, 100000)
        self.count.setValue(100)
        self.count.setPrefix("N = ")
        self.count.setToolTip("Images per cell (a seeded spread over the data set)")
        self.batch = QSpinBox()
        self.batch.setRange(0, 1024)
        self.batch.setSpecialValueText("B = paper's")     # 0: each method's own stream batch
        self.batch.setValue(0)
        self.batch.setPrefix("B = ")
        self.batch.setToolTip("Online protocol: images per update of each stream. B = paper's: each method's own "
                              "(tent 200, actmad 128, ttt++ 256, aws 16, TTT-Online and the others 1). aws learns "
                              "from the pairs of a batch and needs 2 or more")
        protocol = window.method_panel.protocol      # B is for the online protocol's streams only
        protocol.currentTextChanged.connect(lambda p: self.batch.setEnabled(p == "online"))
        self.batch.setEnabled(protocol.currentText() == "online")
        self.diagnose = QCheckBox("Gradient diagnostic")
        self.diagnose.setToolTip("Episodic: per labelled image, the cosine of the self-supervised and classification "
                                 "gradients at step 1 against the decrease of the true class's loss (the TTT "
                                 "paper's diagnostic). The label never enters the update; images run one at a time.")
        self.start_button = QPushButton("Evaluate")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("summary.csv, images.csv and run.json, as tttgui eval writes them")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_dialog)
        self.last = None          # the last EvalResult
        self.run = None           # the last BatchRun (result, skipped images, images per cell)
        # what the running batch evaluates (config, checkpoint, data, device), taken when it starts, and the same
        # for the result shown: an export describes the run it holds, not the window as it is when exporting
        self.pending: dict | None = None
        self.shown: dict | None = None
        self.progress = QProgressBar()
        self.summary = WrappedLabel("Evaluate N images for every ticked corruption × severity × method.")
        self.heat = Heatmap()
        self.heat.setVisible(False)
        self.heat.setMinimumHeight(150)
        self.heat.setMinimumWidth(280)      # pyqtgraph clips a squeezed plot; the tab scrolls instead
        self.scatter = DiagnosticPlot()
        self.scatter.setVisible(False)
        self.scatter.setMinimumHeight(150)
        self.scatter.setMinimumWidth(240)
        # The plots take the height there is: their preferred 480 px entered the summary's height-for-width, so
        # the scroll area made the tab 560 px tall on a 720 px screen and the heatmap sat below the fold.
        for plot in (self.heat.plot, self.scatter.plot):
            plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)

        # Controls in a column on the left, the heatmap and the scatter beside them at the tab's full height: on
        # a 720 px screen the History dock is about 250 px tall, too short to stack results under controls. The
        # summary goes under the results at their width: the methods' names it lists (e.g. "AWS, L_cl batch mean
        # (linear classifier)") wrapped to five lines in the controls' column and pushed the tab into scrolling.
        from PySide6.QtWidgets import QGridLayout

        controls = QGridLayout()
        controls.addWidget(self.corruptions, 0, 0)
        controls.addWidget(self.severities, 0, 1)
        controls.addWidget(self.methods, 1, 0)
        controls.addWidget(self.count, 1, 1)
        controls.addWidget(self.diagnose, 2, 0)
        controls.addWidget(self.batch, 2, 1)
        row = QHBoxLayout()
        for w in (self.start_button, self.cancel_button, self.export_button):
            row.addWidget(w)
        left = QWidget()
        left.setFixedWidth(330)
        col = QVBoxLayout(left)
        col.setContentsMargins(0, 0, 0, 0)
        col.addLayout(controls)
        col.addLayout(row)
        col.addWidget(self.progress)
        col.addStretch(1)
        results = QHBoxLayout()
        results.addWidget(self.heat, 3)
        results.addWidget(self.scatter, 2)
        right = QVBoxLayout()
        right.addWidget(self.summary)
        right.addLayout(results, 1)
        inner = QWidget()
        lay = QHBoxLayout(inner)
        lay.addWidget(left, 0, Qt.AlignmentFlag.AlignLeft)   # left, not centred, before any result
        lay.addLayout(right, 1)
        # the History dock is short on a 720 px screen: the panel scrolls rather than make the window taller
        scroll = QScrollArea()
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)   # narrow: scroll, never clip
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._grown = False
        w = window.controller.worker
        w.batch_progress.connect(self._progress)
        w.batch_done.connect(self._done)
        window.model_loaded.connect(self.refresh_choices)
        self.refresh_choices()

    # -- the grid's choices ---------------------------------------------------------------------------
    def refresh_choices(self) -> None:
        """Items from the data set (a release offers its own files and severities); ticks follow the Shift and
        Method panels until the user ticks in the grid."""
        from tttgui.gui import engine

        ds = self.window.dataset
        if is_release(ds):
            corruptions, severities = list(ds.available), [str(s) for s in ds.severities]
        else:
            corruptions, severities = engine.corruption_names(), [str(s) for s in range(1, 6)]
        name, severity = self.window.shift_panel.choice()
        follow = not self.custom
        names = self.window.method_label
        for box, items, own in ((self.corruptions, corruptions, [name]), (self.severities, severities, [severity]),
                                (self.methods, engine.method_names(), [self.window.method_panel.config().method])):
            keep = {str(c) for c in (own if follow else box.checked())}
            labels = {m: names(m) for m in items} if box is self.methods else {str(i): str(i) for i in items}
            if box.items() != list(items) or box.checked() != [i for i in items if i in keep] or \
                    box.labels() != labels:
                box.set_items(items, keep, labels)
        self.methods.disable((self.window.model_info or {}).get("unusable", {}))   # e.g. TTT without rotation head

    @Slot()
    def _ticked(self, *_) -> None:
        self.custom = True

    def choose(self, corruptions, severities, methods) -> None:
        """Tick these (what a user does in the three menus)."""
        self.refresh_choices()
        self.custom = True
        self.corruptions.set_checked(corruptions)
        self.severities.set_checked(severities)
        self.methods.set_checked(methods)

    def config(self, dataset=None):
        from tttgui.evaluation import EvalConfig

        self.refresh_choices()
        m = self.window.method_panel.config()
        corruptions = tuple(self.corruptions.checked())
        severities = tuple(int(s) for s in self.severities.checked())
        methods = tuple(self.methods.checked())
        for what, chosen in (("corruption", corruptions), ("severity", severities), ("method", methods)):
            if not chosen:
                raise ValueError(f"no {what} ticked; tick at least one in the grid's menus")
        diagnose = self.diagnose.isChecked()
        if diagnose and m.protocol != "episodic":
            raise ValueError(f"the gradient diagnostic is per image, in the episodic protocol; choose episodic in the "
                             f"Method panel (now {m.protocol}) or untick it")
        return EvalConfig(corruptions=corruptions, severities=severities, methods=methods, settings=m,
                          diagnose=diagnose, batch_size=self.batch.value() or None if m.protocol == "online" else None)

    @Slot()
    def start(self) -> None:
        from tttgui.evaluation import shifts

        win = self.window
        if win.dataset is None or win.model_info is None:
            win.report("batch evaluation needs a model and a data set")
            return
        if list(win.dataset.classes) != list(win.model_info["classes"]):
            win.report("batch evaluation needs a data set with the model's classes "
                       f"({', '.join(win.model_info['classes'][:4])}, …)")
            return
        if win.labels is not None and not (win.labels >= 0).any():
            win.report("batch evaluation needs labelled images (it measures error); this data set has no labels")
            return
        try:
            cfg = self.config()
            dataset = batch_dataset(win.dataset, cfg.severities[0])
        except Exception as exc:  # noqa: BLE001
            from tttgui.gui.errors import one_line
            win.report(one_line(exc, "invalid batch settings"))
            return
        n = min(self.count.value(), len(dataset))
        # A seeded spread over the whole set, so a class-sorted folder still gives every class.
        indices = np.sort(np.random.default_rng(cfg.seed).permutation(len(dataset))[:n])
        self.running = True
        self.config_run = cfg
        self.pending = {"cfg": cfg, "checkpoint": (win.model_info or {}).get("path"),
                        "data": getattr(win.dataset, "source", None), "device": win.device_label.text()}
        # the last grid goes: a failed or cancelled new batch must not leave it on screen (or exportable) as if
        # it were the new one
        self.last = self.run = self.shown = None
        self.results = {}
        self.export_button.setEnabled(False)
        self.heat.setVisible(False)
        self.scatter.setVisible(False)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, n)
        self.progress.setValue(0)
        cells = len(cfg.methods) * len(shifts(cfg))
        self.summary.setText(f"Evaluating {n} images × {cells} cell(s): {', '.join(cfg.corruptions)} × "
                             f"s{','.join(map(str, cfg.severities))} × {', '.join(cfg.methods)} ({cfg.protocol})…")
        win.controller.evaluate(win.dataset, indices, cfg)

    @Slot()
    def cancel(self) -> None:
        self.window.controller.cancel_batch()

    @Slot(int, int)
    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    @Slot(object)
    def _done(self, run) -> None:
        self.running = False
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if run is None:
            self.summary.setText("Batch evaluation failed; see the status bar.")
            return
        self.run, self.last, self.skipped, self.shown = run, run.result, run.skipped, self.pending
        self.export_button.setEnabled(bool(run.result.images))
        self.results = {(s.corruption, s.severity): (s.error_before, s.error_after, s.n) for s in run.result.summary}
        names = {m: self.window.method_label(m) for m in self.config_run.methods}
        self.summary.setText(batch_text(run, names))
        self.window.statusBar().showMessage(self.summary.text().split("\n")[0], 10000)
        from tttgui.evaluation import shifts

        cfg = self.config_run
        self.heat.set_summary(run.result.summary, run.asked, [(c, s, m) for c, s in shifts(cfg) for m in cfg.methods],
                              names)
        self.heat.setVisible(bool(run.result.summary))
        if cfg.diagnose:
            self.scatter.set_rows(run.result.images, names)
        self.scatter.setVisible(cfg.diagnose and bool(run.result.images))
        self._grow()

    def _grow(self) -> None:
        """Once there is a grid to read, give the History dock (this tab) about 40 % of the window's height (on a
        720 px screen the plots above keep their minimum; the tab's columns are laid out for what is left)."""
        win = self.window
        if self._grown or not hasattr(win, "history_dock") or not self.isVisible():
            return
        self._grown = True
        win.resizeDocks([win.history_dock], [max(win.history_dock.height(), int(win.height() * 0.4))],
                        Qt.Orientation.Vertical)

    @Slot()
    def export_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Export batch evaluation")
        if folder:
            self.export(folder)

    def export(self, folder) -> bool:
        """The last batch as tttgui eval writes a run: summary.csv, images.csv, run.json (+ the skipped images)."""
        from tttgui.evaluation import run_record, shifts, write_result

        win, shown = self.window, self.shown
        if self.last is None or shown is None:
            win.report("no batch evaluation to export: Evaluate first")
            return False
        cfg = shown["cfg"]
        try:
            info = run_record(self.last, cfg, "tttgui (window batch evaluation)",
                              checkpoint=shown["checkpoint"], data=shown["data"],
                              images=len({r.index for r in self.last.images}), device=shown["device"],
                              skipped=skipped_record(self.skipped), complete=not self.last.cancelled,
                              cells={"finished": len(self.last.summary),
                                     "total": len(cfg.methods) * len(shifts(cfg))})
            out = write_result(folder, self.last, info)
        except Exception as exc:  # noqa: BLE001
            from tttgui.gui.errors import one_line
            win.report(one_line(exc, f"export to {folder} failed"))
            return False
        win.statusBar().showMessage(f"Exported the batch evaluation to {out}", 10000)
        return True

    def shutdown(self) -> None:
        self.cancel()
