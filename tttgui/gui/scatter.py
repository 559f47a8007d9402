"""The TTT paper's own diagnostic over a batch's images: the cosine of the self-supervised and classification
gradients at the first step against how much adaptation lowered the true class's loss, one colour per method,
with Pearson's r per method (Sun et al. 2020, Fig. 2, per image rather than per test set)."""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QSize
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from tttgui.results import diagnostic

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


def correlation_text(by_method: dict, names=None) -> str:
    """'ttt: r = +0.62 (n = 87)' per method (`names`: as the user reads them); an honest word where there is
    nothing to correlate."""
    parts = []
    for method, (x, _, r) in by_method.items():
        parts.append(f"{(names or {}).get(method, method)}: " + (
            f"r = {r:+.2f} (n = {len(x)})" if not math.isnan(r) else
            f"no correlation (n = {len(x)}: too few points or no spread)"))
    return "; ".join(parts)


class DiagnosticPlot(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.by_method: dict = {}
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLabel("bottom", "gradient cosine (step 1)")
        self.plot.setLabel("left", "loss decrease (nats)")
        for side in ("bottom", "left"):     # a cosine of 0.2 must not read as "200 (x0.001)"
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.plot.setTitle("Cosine vs loss decrease", size="9pt")     # the x axis names the gradient cosine
        self.plot.addLine(y=0, pen=pg.mkPen((150, 150, 150), style=pg.QtCore.Qt.PenStyle.DashLine))
        self.plot.addLine(x=0, pen=pg.mkPen((150, 150, 150), style=pg.QtCore.Qt.PenStyle.DashLine))
        self.legend = self.plot.addLegend(offset=(10, 10), labelTextSize="8pt")   # top left: few points there
        self.items: list = []
        self.text = QLabel("")
        # one line, never wrapped: a wrapped label's height-for-width made the Batch tab 500 px tall
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.text)

    def sizeHint(self):
        return QSize(320, 180)

    def set_rows(self, rows, names=None) -> None:
        """Rows of a batch (tttgui.results.ImageRow); those without the diagnostic are left out. `names`: each
        method's name as the user reads it."""
        names = names or {}
        groups: dict = {}
        for r in rows:
            groups.setdefault(r.method, []).append(r)
        self.by_method = {m: diagnostic(g) for m, g in groups.items()}
        self.by_method = {m: v for m, v in self.by_method.items() if len(v[0])}
        for item in self.items:
            self.plot.removeItem(item)
        self.items = []
        self.legend.clear()
        for k, (method, (x, y, r)) in enumerate(self.by_method.items()):
            colour = COLOURS[k % len(COLOURS)]
            shown = names.get(method, method)
            item = pg.ScatterPlotItem(x, y, size=6, pen=None, brush=pg.mkBrush(colour),
                                      name=shown if math.isnan(r) else f"{shown} (r = {r:+.2f})")
            self.plot.addItem(item)
            self.items.append(item)
        self.text.setText(correlation_text(self.by_method, names) if self.by_method else
                          "No diagnostic: it needs labelled images and a method that adapts.")
        self.text.setToolTip(self.text.text())
