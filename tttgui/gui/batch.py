"""Batch evaluation: N images of the current shift with the current method, through the same engine as
`tttgui eval` (run on the worker thread), with progress and Cancel; a corruption × severity heatmap of the
error after adaptation once several shifts were run."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget


def summary_line(s) -> str:
    """One shift × method of a batch: errors ('n/a' without labels) and the diverged count."""
    pct = lambda v: "n/a" if v is None else f"{v:.1f}%"  # noqa: E731
    return (f"{s.corruption} s{s.severity}, {s.method} ({s.protocol}), n={s.n}: error without adaptation "
            f"{pct(s.error_before)}, with {pct(s.error_after)}; diverged {s.diverged}")


def batch_dataset(dataset, severity: int):
    """What a batch evaluates: the data set, or of a corruption release (CIFAR-10-C) the block of rows of the
    chosen severity, whose images are corrupted already (so the batch does not corrupt them again)."""
    if getattr(dataset, "corruption", None) is None or getattr(dataset, "severity", None) is not None:
        return dataset
    from tttgui.data.corrupted import CorruptionDataset

    return CorruptionDataset(dataset.root, dataset.corruption, severity, classes=list(dataset.classes))


class BatchPanel(QWidget):
    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.window = window
        self.results: dict[tuple[str, int], tuple[float, float, int]] = {}   # shift -> (before %, after %, n)
        self.running = False
        self.count = QSpinBox()
        self.count.setRange(1, 100000)
        self.count.setValue(100)
        self.count.setPrefix("N = ")
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
        self.progress = QProgressBar()
        self.summary = QLabel("Evaluate N images of the current corruption and severity with the current method.")
        self.summary.setWordWrap(True)
        self.heat = pg.PlotWidget(title="Error after adaptation (%)")
        self.heat.setBackground("w")
        self.image = pg.ImageItem()
        self.heat.addItem(self.image)
        self.heat.getViewBox().invertY(True)
        self.heat.setVisible(False)
        self.heat.setMinimumHeight(160)

        row = QHBoxLayout()
        row.addWidget(self.count)
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.export_button)
        row.addWidget(self.progress, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.summary)
        lay.addWidget(self.heat, 1)
        w = window.controller.worker
        w.batch_progress.connect(self._progress)
        w.batch_done.connect(self._done)

    def config(self, dataset=None):
        from tttgui.evaluation import EvalConfig

        m = self.window.method_panel.config()
        name, severity = self.window.shift_panel.choice()
        if getattr(dataset, "severity", None) is not None:   # a release block: its own corruption, already done
            name, severity = dataset.corruption, dataset.severity
        return EvalConfig(corruptions=(name,), severities=(severity,), methods=(m.method,), settings=m)

    @Slot()
    def start(self) -> None:
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
            dataset = batch_dataset(win.dataset, self.window.shift_panel.choice()[1])
            cfg = self.config(dataset)
        except Exception as exc:  # noqa: BLE001
            from tttgui.gui.errors import one_line
            win.report(one_line(exc, "invalid batch settings"))
            return
        n = min(self.count.value(), len(dataset))
        # A seeded spread over the whole set, so a class-sorted folder still gives every class.
        indices = np.sort(np.random.default_rng(cfg.seed).permutation(len(dataset))[:n])
        self.running = True
        self.config_run = cfg
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, n)
        self.progress.setValue(0)
        self.summary.setText(f"Evaluating {n} images: {cfg.corruptions[0]} s{cfg.severities[0]}, "
                             f"{cfg.methods[0]} ({cfg.protocol})…")
        win.controller.evaluate(dataset, indices, cfg)

    @Slot()
    def cancel(self) -> None:
        self.window.controller.cancel_batch()

    @Slot(int, int)
    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    @Slot(object)
    def _done(self, result) -> None:
        self.running = False
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if result is None:
            self.summary.setText("Batch evaluation failed; see the status bar.")
            return
        self.last = result
        self.export_button.setEnabled(bool(result.images))
        lines = []
        for s in result.summary:
            self.results[(s.corruption, s.severity)] = (s.error_before, s.error_after, s.n)
            lines.append(summary_line(s))
        state = "Cancelled — partial result. " if result.cancelled else ""
        self.summary.setText(state + ("; ".join(lines) or "no images evaluated") + f" ({result.seconds:.1f} s)")
        self.window.statusBar().showMessage(self.summary.text(), 10000)
        self._draw_heatmap()

    @Slot()
    def export_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Export batch evaluation")
        if folder:
            self.export(folder)

    def export(self, folder) -> bool:
        """The last batch as tttgui eval writes a run: summary.csv, images.csv, run.json."""
        from tttgui.evaluation import run_record, write_result

        win = self.window
        try:
            info = run_record(self.last, self.config_run, "tttgui (window batch evaluation)",
                              checkpoint=(win.model_info or {}).get("path"), data=getattr(win.dataset, "source", None),
                              images=len({r.index for r in self.last.images}), device=win.device_label.text())
            out = write_result(folder, self.last, info)
        except Exception as exc:  # noqa: BLE001
            from tttgui.gui.errors import one_line
            win.report(one_line(exc, f"export to {folder} failed"))
            return False
        win.statusBar().showMessage(f"Exported the batch evaluation to {out}", 10000)
        return True

    def _draw_heatmap(self) -> None:
        corr = sorted({c for c, _ in self.results})
        sev = sorted({s for _, s in self.results})
        if len(self.results) < 2:
            self.heat.setVisible(False)
            return
        grid = np.full((len(corr), len(sev)), np.nan)
        for (c, s), (_, after, _) in self.results.items():
            grid[corr.index(c), sev.index(s)] = np.nan if after is None else after
        self.image.setImage(np.nan_to_num(grid, nan=0.0), levels=(0, 100),
                            lut=pg.colormap.get("viridis").getLookupTable())
        self.heat.getAxis("left").setTicks([[(i + 0.5, c) for i, c in enumerate(corr)]])
        self.heat.getAxis("bottom").setTicks([[(j + 0.5, f"s{s}") for j, s in enumerate(sev)]])
        self.heat.setVisible(True)

    def shutdown(self) -> None:
        self.cancel()
