"""The live plots. Every item is created once and only its data changes (pyqtgraph redraws are cheap that way);
the window calls `show_records` from a timer at most 30 times a second, on the GUI thread only.
"""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

BEFORE = (150, 150, 150)
NOW = (31, 119, 180)
ACCENT = (214, 39, 40)
GREEN = (44, 160, 44)
LEGEND_BRUSH = (255, 255, 255, 210)   # a legend may still touch a curve: keep its text readable
# Where a legend may sit, in order of preference: its anchor on the plot's edge (x, y from the top left; the
# legend's own anchor is the same point), corners first, then the middles of the edges.
PLACES = ((1, 0), (0, 0), (1, 1), (0, 1), (1, .5), (0, .5), (.5, 0), (.5, 1))


class LivePlots(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.classes: list[str] = []
        self.label: int | None = None
        self.source_norm: dict = {}
        self._records: tuple = ()
        self._layer_names: list[str] = []
        self._place: dict[int, int] = {}     # id(plot) -> index into PLACES of its legend

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Channels of layer:"))
        self.layer_box = QComboBox()
        self.layer_box.setMinimumContentsLength(18)
        self.layer_box.currentIndexChanged.connect(self._redraw_channels)
        bar.addWidget(self.layer_box)
        self.moment_box = QComboBox()
        self.moment_box.addItems(["mean", "variance"])
        self.moment_box.currentIndexChanged.connect(self._redraw_channels)
        bar.addWidget(self.moment_box)
        bar.addStretch(1)
        self.summary = QLabel("")
        bar.addWidget(self.summary)

        # One PlotWidget (its own viewport) per plot, so a frame can be painted plot by plot within a time
        # budget instead of as one long paint of everything.
        self.canvas = QWidget()
        self.canvas.setMinimumSize(520, 420)
        self.grid = QGridLayout(self.canvas)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.widgets: list[pg.PlotWidget] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.canvas, 1)
        self._build()
        self._dirty: list = []
        self._next = 0

    # -- construction ---------------------------------------------------------------------------------
    def _add(self, row: int, col: int, title: str):
        w = pg.PlotWidget(title=title)
        w.setBackground("w")
        self.grid.addWidget(w, row, col)
        self.widgets.append(w)
        return w.getPlotItem()

    def _build(self) -> None:
        self.loss_plot = self._add(0, 0, title="Self-supervised loss")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen(NOW, width=2), symbol="o", symbolSize=5,
                                              symbolBrush=NOW)

        self.prob_plot = self._add(0, 1, title="Class probabilities (grey: before, blue: now)")
        self.prob_plot.setYRange(0, 1.08, padding=0)
        self.prob_plot.setMouseEnabled(x=False, y=False)
        self.bars_before = pg.BarGraphItem(x=[], height=[], width=0.4, brush=BEFORE, pen=None)
        self.bars_now = pg.BarGraphItem(x=[], height=[], width=0.4, brush=NOW, pen=None)
        self.prob_plot.addItem(self.bars_before)
        self.prob_plot.addItem(self.bars_now)
        self.true_mark = pg.ScatterPlotItem([], [], symbol="star", size=14, brush=ACCENT, pen=None)
        self.prob_plot.addItem(self.true_mark)

        self.conf_plot = self._add(1, 0, title="Entropy and confidence")
        self.conf_plot.setLabel("bottom", "step")
        self.conf_plot.addLegend(offset=(-5, 5), brush=LEGEND_BRUSH)
        self.entropy_curve = self.conf_plot.plot([], [], pen=pg.mkPen(ACCENT, width=2), name="entropy")
        self.conf_curve = self.conf_plot.plot([], [], pen=pg.mkPen(GREEN, width=2), name="confidence")

        self.cos_plot = self._add(1, 1, title="Gradient cosine (uses the label)")
        self.cos_plot.setLabel("bottom", "step")
        self.cos_plot.setYRange(-1, 1, padding=0.05)
        self.cos_plot.addLine(y=0, pen=pg.mkPen(BEFORE, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.cos_curve = self.cos_plot.plot([], [], pen=pg.mkPen(NOW, width=2), symbol="o", symbolSize=5,
                                            symbolBrush=NOW)
        self.cos_note = pg.TextItem("label unknown", color=BEFORE, anchor=(0.5, 0.5))
        self.cos_plot.addItem(self.cos_note)
        self.cos_note.setPos(0.5, 0)

        self.layer_plot = self._add(2, 0, title="Distance to source statistics per layer")
        self.layer_plot.setLabel("bottom", "norm layer (input → output)")
        self.layer_plot.addLegend(offset=(5, 5), brush=LEGEND_BRUSH, colCount=2)
        dash = pg.QtCore.Qt.PenStyle.DashLine
        self.mean_before = self.layer_plot.plot([], [], pen=pg.mkPen(NOW, width=1, style=dash), name="mean, before")
        self.mean_now = self.layer_plot.plot([], [], pen=pg.mkPen(NOW, width=2), name="mean, now")
        self.var_before = self.layer_plot.plot([], [], pen=pg.mkPen(ACCENT, width=1, style=dash), name="var, before")
        self.var_now = self.layer_plot.plot([], [], pen=pg.mkPen(ACCENT, width=2), name="var, now")

        self.chan_plot = self._add(2, 1, title="Per-channel statistics")
        self.chan_plot.setLabel("bottom", "channel")
        self.chan_plot.addLegend(offset=(5, 5), brush=LEGEND_BRUSH, colCount=3)
        self.chan_source = self.chan_plot.plot([], [], pen=pg.mkPen(BEFORE, width=2), name="source")
        self.chan_before = self.chan_plot.plot([], [], pen=pg.mkPen(NOW, width=1, style=dash), name="before")
        self.chan_now = self.chan_plot.plot([], [], pen=pg.mkPen(NOW, width=2), name="now")

    # -- data -----------------------------------------------------------------------------------------
    def set_context(self, classes, label: int | None, source_norm: dict | None = None) -> None:
        self.classes = list(classes or [])
        self.label = label
        if source_norm is not None:
            self.source_norm = source_norm
        ticks = [(i, _short(n)) for i, n in enumerate(self.classes)]
        self.prob_plot.getAxis("bottom").setTicks([ticks])
        self.prob_plot.setXRange(-0.6, max(len(self.classes), 1) - 0.4, padding=0)

    def clear(self) -> None:
        self.show_records(())

    def show_records(self, records) -> None:
        """Redraw everything from an episode's records (step 0 first), painting at once."""
        self.set_records(records)
        self.draw_pending(budget=None)

    def set_records(self, records) -> None:
        """Take new records; the plots are redrawn by draw_pending."""
        self._records = tuple(records)
        # Start where the last partial frame stopped, so under load every plot still gets its turn.
        order = [self._draw_loss, self._draw_probs, self._draw_conf, self._draw_cos, self._draw_layers,
                 self._redraw_channels]
        self._dirty = order[self._next:] + order[:self._next]
        recs = self._records
        if recs:
            last = recs[-1]
            name = self.classes[last.prediction] if last.prediction < len(self.classes) else last.prediction
            loss = "—" if last.loss is None else f"{last.loss:.4f}"
            self.summary.setText(f"step {last.step}  loss {loss}  prediction {name} ({last.confidence:.0%})")
        else:
            self.summary.setText("")

    def draw_pending(self, budget: float | None = 0.03) -> bool:
        """Update and paint the plots not yet drawn, stopping once `budget` seconds are spent (None: all).
        Returns True while some remain, so the caller comes back on its next tick."""
        start = time.perf_counter()
        while self._dirty:
            draw = self._dirty.pop(0)
            widget = draw()
            self._next = (self.widgets.index(widget) + 1) % len(self.widgets)
            if widget is not None and self.isVisible():
                widget.viewport().repaint()
            if budget is not None and time.perf_counter() - start > budget:
                break
        return bool(self._dirty)

    def _draw_loss(self):
        lossy = [r for r in self._records if r.loss is not None]
        self.loss_curve.setData([r.step for r in lossy], [float(r.loss) for r in lossy])
        return self.widgets[0]

    def _draw_conf(self):
        recs = self._records
        steps = np.array([r.step for r in recs], dtype=float)
        self.entropy_curve.setData(steps, [float(r.entropy) for r in recs])
        self.conf_curve.setData(steps, [float(r.confidence) for r in recs])
        self._place_legend(self.conf_plot, (self.entropy_curve, self.conf_curve))
        return self.widgets[2]

    def _draw_cos(self):
        recs = self._records
        cos = [r for r in recs if r.grad_cosine is not None]
        self.cos_curve.setData([r.step for r in cos], [float(r.grad_cosine) for r in cos])
        self.cos_note.setVisible(bool(recs) and not cos)
        return self.widgets[3]

    def pending(self) -> bool:
        return bool(self._dirty)

    def point_counts(self) -> dict[str, int]:
        """How many points each per-step plot shows (for tests and the status bar)."""
        def n(item):
            x, _ = item.getData()
            return 0 if x is None else len(x)
        return {"loss": n(self.loss_curve), "entropy": n(self.entropy_curve), "confidence": n(self.conf_curve),
                "cosine": n(self.cos_curve)}

    def _draw_probs(self):
        recs = self._records
        if not recs:
            self.bars_before.setOpts(x=[], height=[])
            self.bars_now.setOpts(x=[], height=[])
            self.true_mark.setData([], [])
            return self.widgets[1]
        before, now = np.asarray(recs[0].probs, float), np.asarray(recs[-1].probs, float)
        x = np.arange(len(now), dtype=float)
        self.bars_before.setOpts(x=x - 0.2, height=before, width=0.4)
        self.bars_now.setOpts(x=x + 0.2, height=now, width=0.4)
        if self.label is not None and 0 <= self.label < len(now):
            self.true_mark.setData([float(self.label)], [1.03])
        else:
            self.true_mark.setData([], [])
        return self.widgets[1]

    def _draw_layers(self):
        recs = self._records
        if not recs or not recs[0].layers:
            for c in (self.mean_before, self.mean_now, self.var_before, self.var_now):
                c.setData([], [])
            return self.widgets[4]
        first, last = recs[0].layers, recs[-1].layers
        if not np.isfinite([s.mean_dist for s in first]).any():
            self.layer_plot.setTitle("Distance to source statistics: the checkpoint has none")
        x = np.arange(len(first), dtype=float)
        self.mean_before.setData(x, [float(s.mean_dist) for s in first])
        self.var_before.setData(x, [float(s.var_dist) for s in first])
        self.mean_now.setData(x[:len(last)], [float(s.mean_dist) for s in last])
        self.var_now.setData(x[:len(last)], [float(s.var_dist) for s in last])
        self._place_legend(self.layer_plot, (self.mean_before, self.mean_now, self.var_before, self.var_now))
        names = [s.name for s in first]
        if names != self._layer_names:
            self._layer_names = names
            keep = self.layer_box.currentText()
            self.layer_box.blockSignals(True)
            self.layer_box.clear()
            self.layer_box.addItems(names)
            self.layer_box.setCurrentIndex(names.index(keep) if keep in names else 0)
            self.layer_box.blockSignals(False)
        return self.widgets[4]

    def _redraw_channels(self, *_):
        recs = self._records
        i = self.layer_box.currentIndex()
        if not recs or i < 0 or not recs[0].layers or i >= len(recs[0].layers):
            for c in (self.chan_source, self.chan_before, self.chan_now):
                c.setData([], [])
            return self.widgets[5]
        var = self.moment_box.currentIndex() == 1
        pick = (lambda s: s.channel_var) if var else (lambda s: s.channel_mean)  # noqa: E731
        before, now = recs[0].layers[i], recs[-1].layers[min(i, len(recs[-1].layers) - 1)]
        y0, y1 = np.asarray(pick(before), float), np.asarray(pick(now), float)
        self.chan_before.setData(np.arange(len(y0)), y0)
        self.chan_now.setData(np.arange(len(y1)), y1)
        src = getattr(before, "source_var" if var else "source_mean", None)
        if src is None:
            src = self.source_norm.get(before.name, {}).get("var" if var else "mean")
        if src is not None and len(src) == len(y0):
            self.chan_source.setData(np.arange(len(src)), np.asarray(src, float))
        else:
            self.chan_source.setData([], [])
        self.chan_plot.setTitle(f"Per-channel {'variance' if var else 'mean'}: {before.name}")
        self._place_legend(self.chan_plot, (self.chan_source, self.chan_before, self.chan_now))
        return self.widgets[5]

    def _place_legend(self, plot, curves) -> None:
        """Keep the legend off the curves (their right end is the latest step, which it used to hide)."""
        current = self._place.get(id(plot))
        best = _legend_place(plot, curves, current)
        if best is not None and best != current:
            ax, ay = PLACES[best]
            offset = (5 * (1 - 2 * ax) if ax != .5 else 0, 5 * (1 - 2 * ay) if ay != .5 else 0)
            plot.legend.anchor(itemPos=(ax, ay), parentPos=(ax, ay), offset=offset)
            self._place[id(plot)] = best

    # -- appearance -----------------------------------------------------------------------------------
    def set_dark(self, dark: bool) -> None:
        bg, fg = ((30, 30, 30), (220, 220, 220)) if dark else ((255, 255, 255), (40, 40, 40))
        for w in self.widgets:
            w.setBackground(bg)
        for p in (self.loss_plot, self.prob_plot, self.conf_plot, self.cos_plot, self.layer_plot, self.chan_plot):
            for side in ("left", "bottom"):
                ax = p.getAxis(side)
                ax.setPen(pg.mkPen(fg))
                ax.setTextPen(pg.mkPen(fg))
            p.titleLabel.setText(p.titleLabel.text, color=pg.mkColor(fg))
            if p.legend is not None:
                p.legend.setBrush(pg.mkBrush(*bg, 210))
                p.legend.setLabelTextColor(pg.mkColor(fg))


def _legend_place(plot, curves, current: int | None) -> int | None:
    """Where (an index into PLACES) the plot's legend covers the fewest points of its curves, the current place
    on a tie; None when the plot has no size or data yet."""
    legend, vb = plot.legend, plot.getViewBox()
    vb.updateAutoRange()                      # the range the new data will be shown in, before the paint
    (x0, x1), (y0, y1) = vb.viewRange()
    box, view = legend.boundingRect(), vb.boundingRect()
    if view.width() < 1 or view.height() < 1 or x1 <= x0 or y1 <= y0:
        return None
    fw, fh = (box.width() + 5) / view.width(), (box.height() + 5) / view.height()
    pts = []
    for c in curves:
        x, y = c.getData()
        if x is None or len(x) == 0:
            continue
        t = np.linspace(0, len(x) - 1, 20 * len(x))     # points along the segments, not just the samples
        pts.append(np.stack([np.interp(t, np.arange(len(x)), x), np.interp(t, np.arange(len(y)), y)]))
    if not pts:
        return None
    u, v = np.concatenate(pts, axis=1)
    u, v = (u - x0) / (x1 - x0), (y1 - v) / (y1 - y0)        # 0..1 across the view, v down like the anchors
    hits = [int(np.count_nonzero((np.abs(u - (ax + (.5 - ax) * fw)) <= fw / 2)
                                 & (np.abs(v - (ay + (.5 - ay) * fh)) <= fh / 2))) for ax, ay in PLACES]
    return min(range(len(PLACES)), key=lambda i: (hits[i], i != current, i))


def _short(name: str, n: int = 6) -> str:
    return name if len(name) <= n else name[:n - 1] + "."
