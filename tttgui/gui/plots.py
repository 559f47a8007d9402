"""The live plots. Every item is created once and only its data changes (pyqtgraph redraws are cheap that way);
the window feeds them from a timer at most 30 times a second, on the GUI thread only.
"""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QStyle,
                               QStyleOptionComboBox, QStylePainter, QVBoxLayout, QWidget)

from tttgui.gui.plot_items import (LABEL_STYLE, TITLE_SIZE, Note, PlotWidget, StepAxis, class_ticks,
                                   place_legend)

BEFORE = (150, 150, 150)
NOW = (31, 119, 180)
ACCENT = (214, 39, 40)
GREEN = (44, 160, 44)
# "Before" curves are drawn dashed in a darker (on a dark background: lighter) shade of their "now" colour and on
# top of "now": where adaptation changed nothing the two coincide, and a "before" drawn underneath was hidden.
BEFORE_SHADE = {NOW: ((10, 60, 115), (160, 205, 240)), ACCENT: ((150, 10, 10), (250, 170, 170))}
BEFORE_Z = 2
LEGEND_BRUSH = (255, 255, 255, 210)   # a legend may still touch a curve: keep its text readable
# What each plot's points are, on hover: "step k" is the image after k updates; the loss and the cosine belong to
# the update into step k (computed on the weights of step k − 1), so step 0 has neither.
PLOT_HELP = {
    "loss": "At step k: the self-supervised loss of the update into step k, computed on the weights of step k − 1 "
            "(on that update's views for methods that augment). Step 0 has no update, so no point.",
    "probs": "Softmax over the classes on the un-augmented image: grey before adaptation, blue at the current step; "
             "the star marks the true class when the image has a label.",
    "conf": "At step k: entropy (nats) and top-class probability of the prediction on the un-augmented image after "
            "k updates; step 0 is the model before adaptation.",
    "cosine": "At step k: cosine between the self-supervised and the classification gradients on the shared trunk, "
              "for the update into step k (the TTT paper's diagnostic). It needs the true label, which never "
              "enters the update.",
    "layers": "For each normalisation layer, from the network's input to its output: the RMS over channels of "
              "the difference between this image's channel means (blue) or variances (red) of the layer's output "
              "and the source statistics, before adaptation (dashed, darker, drawn over now) and now.",
    "channels": "The chosen layer's output, channel by channel (mean or variance, as the menus above choose): the "
                "source statistics, this image before adaptation (dashed, darker, drawn over now) and now.",
}
NO_IMAGE = "no image"
NO_STEP = "no step yet: Step (F10) or Run (F5)"


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % rgb


class LayerBox(QComboBox):
    """The layer menu: as wide as its longest name, between MIN_CHARS characters and MAX_WIDTH px. A name that does
    not fit is elided in the middle ("trunk.bl…0.norm1": the model part and the layer both stay readable); the
    full name is the tooltip and the open list is wide enough for every name."""

    MIN_CHARS = 13
    MAX_WIDTH = 230

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.setMinimumContentsLength(self.MIN_CHARS)
        self.setMaximumWidth(self.MAX_WIDTH)
        self.view().setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.currentIndexChanged.connect(self._tip)

    def set_names(self, names, keep: str = "") -> None:
        """Replace the items (no signal), keeping `keep` selected when it is one of them."""
        self.blockSignals(True)
        self.clear()
        self.addItems(names)
        for i, name in enumerate(names):
            self.setItemData(i, name, Qt.ItemDataRole.ToolTipRole)
        self.setCurrentIndex(names.index(keep) if keep in names else 0)
        self.blockSignals(False)
        view = self.view()
        fm = view.fontMetrics()
        widest = max((fm.horizontalAdvance(n) for n in names), default=0)
        view.setMinimumWidth(widest + 2 * fm.horizontalAdvance("M") + view.verticalScrollBar().sizeHint().width())
        self._tip()

    def _tip(self, *_) -> None:
        self.setToolTip(self.currentText())

    def _option(self) -> QStyleOptionComboBox:
        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        return opt

    def shown_text(self) -> str:
        """The current name as painted: whole, or elided in the middle to the room the box has."""
        opt = self._option()
        room = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, opt,
                                           QStyle.SubControl.SC_ComboBoxEditField, self).width()
        return self.fontMetrics().elidedText(opt.currentText, Qt.TextElideMode.ElideMiddle, room)

    def paintEvent(self, event) -> None:
        painter = QStylePainter(self)
        opt = self._option()
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, opt)
        opt.currentText = self.shown_text()
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, opt)


class LivePlots(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.classes: list[str] = []
        self.label: int | None = None
        self.adapts = True                 # False for `source`: no loss, no cosine, nothing to wait for
        self.source_norm: dict = {}
        self.message = ""                  # why there are no records (a broken image); "" otherwise
        self.extra_steps = 0               # a pinned episode's last step (tttgui.gui.compare): the axes show it too
        self._records: tuple = ()
        self._layer_names: list[str] = []
        self._place: dict[int, int] = {}     # id(plot) -> index into PLACES of its legend

        bar = QHBoxLayout()
        # "Layer:" (the channel plot's title names the layer): a timm model's long names need the room
        layer_label = QLabel("Layer:")
        layer_label.setToolTip("The layer whose channels the per-channel plot shows")
        bar.addWidget(layer_label)
        self.layer_box = LayerBox()
        self.layer_box.currentIndexChanged.connect(self._redraw_channels)
        bar.addWidget(self.layer_box)
        self.moment_box = QComboBox()
        self.moment_box.addItems(["mean", "variance"])
        self.moment_box.currentIndexChanged.connect(self._redraw_channels)
        bar.addWidget(self.moment_box)
        self.summary = QLabel("")
        # the summary may be cut on a narrow window; it must never make the window wider
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        bar.addWidget(self.summary, 1)

        # One PlotWidget (its own viewport) per plot, so a frame can be painted plot by plot within a time
        # budget instead of as one long paint of everything.
        self.canvas = QWidget()
        self.canvas.setMinimumSize(480, 330)
        self.grid = QGridLayout(self.canvas)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.widgets: list[pg.PlotWidget] = []
        self.notes: dict[str, Note] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.canvas, 1)
        self._dirty: list = []
        self._next = 0
        self._titles: dict[int, tuple[str, str]] = {}
        self._fg = pg.mkColor(40, 40, 40)
        self._build()

    # -- construction ---------------------------------------------------------------------------------
    def _add(self, row: int, col: int, name: str, title: tuple[str, str], left: str, bottom: str,
             steps: bool = False):
        """A plot with its (long, short) title: the short one where the long one would not fit."""
        axes = {"bottom": StepAxis("bottom")} if steps else {}
        w = PlotWidget(self._fit_title, axisItems=axes)
        w.setBackground("w")
        w.setToolTip(PLOT_HELP[name])
        # titles may be longer than a narrow plot: never let one widen the window
        w.setMinimumWidth(100)
        self.grid.addWidget(w, row, col)
        self.widgets.append(w)
        plot = w.getPlotItem()
        self._set_title(plot, *title)
        plot.setLabel("left", left, **LABEL_STYLE)
        plot.getAxis("left").enableAutoSIPrefix(False)   # "loss (x0.001)" hides the unit the label names
        plot.setLabel("bottom", bottom, **LABEL_STYLE)
        self.notes[name] = Note(plot)
        return plot

    def _build(self) -> None:
        dash = pg.QtCore.Qt.PenStyle.DashLine
        self.loss_plot = self._add(0, 0, "loss", ("Self-supervised loss", "SSL loss"), "loss", "step", steps=True)
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen(NOW, width=2), symbol="o", symbolSize=5,
                                              symbolBrush=NOW)

        key = f"<span style='color:{_hex(BEFORE)}'>■ before</span> <span style='color:{_hex(NOW)}'>■ now</span>"
        self.prob_plot = self._add(0, 1, "probs", (f"Class probabilities: {key}", key), "probability",
                                   "class (★ true)")
        self.prob_plot.setYRange(0, 1.08, padding=0)
        self.prob_plot.setMouseEnabled(x=False, y=False)
        self.bars_before = pg.BarGraphItem(x=[], height=[], width=0.4, brush=BEFORE, pen=None)
        self.bars_now = pg.BarGraphItem(x=[], height=[], width=0.4, brush=NOW, pen=None)
        self.prob_plot.addItem(self.bars_before)
        self.prob_plot.addItem(self.bars_now)
        self.true_mark = pg.ScatterPlotItem([], [], symbol="star", size=14, brush=ACCENT, pen=None)
        self.prob_plot.addItem(self.true_mark)

        self.conf_plot = self._add(1, 0, "conf", ("Entropy and confidence",) * 2, "nats | probability", "step",
                                   steps=True)
        self.conf_plot.addLegend(offset=(-5, 5), brush=LEGEND_BRUSH, labelTextSize="8pt", verSpacing=-6)
        self.entropy_curve = self.conf_plot.plot([], [], pen=pg.mkPen(ACCENT, width=2), name="entropy (nats)",
                                                 symbol="o", symbolSize=4, symbolBrush=ACCENT, symbolPen=None)
        self.conf_curve = self.conf_plot.plot([], [], pen=pg.mkPen(GREEN, width=2), name="confidence",
                                              symbol="o", symbolSize=4, symbolBrush=GREEN, symbolPen=None)

        self.cos_plot = self._add(1, 1, "cosine", ("Gradient cosine (uses the label)", "Gradient cosine"), "cosine", "step",
                                  steps=True)
        self.cos_plot.setYRange(-1, 1, padding=0.05)
        self.cos_plot.addLine(y=0, pen=pg.mkPen(BEFORE, style=dash))
        self.cos_curve = self.cos_plot.plot([], [], pen=pg.mkPen(NOW, width=2), symbol="o", symbolSize=5,
                                            symbolBrush=NOW)

        self.layer_plot = self._add(2, 0, "layers",
                                    ("Distance to source statistics per layer", "Distance to source"), "RMS distance",
                                    "norm layer (input → output)")
        self.layer_plot.addLegend(offset=(5, 5), brush=LEGEND_BRUSH, colCount=2, labelTextSize="8pt",
                                  verSpacing=-6)
        self.mean_before = self.layer_plot.plot([], [], name="mean, before")
        self.mean_now = self.layer_plot.plot([], [], pen=pg.mkPen(NOW, width=2), name="mean, now")
        self.var_before = self.layer_plot.plot([], [], name="var, before")
        self.var_now = self.layer_plot.plot([], [], pen=pg.mkPen(ACCENT, width=2), name="var, now")

        self.chan_plot = self._add(2, 1, "channels", ("Per-channel statistics",) * 2, "activation", "channel")
        self.chan_plot.addLegend(offset=(5, 5), brush=LEGEND_BRUSH, colCount=3, labelTextSize="8pt",
                                 verSpacing=-6)
        self.chan_source = self.chan_plot.plot([], [], pen=pg.mkPen(BEFORE, width=2), name="source")
        self.chan_before = self.chan_plot.plot([], [], name="before")
        self.chan_now = self.chan_plot.plot([], [], pen=pg.mkPen(NOW, width=2), name="now")
        self._befores = ((self.mean_before, NOW), (self.var_before, ACCENT), (self.chan_before, NOW))
        for curve, _ in self._befores:
            curve.setZValue(BEFORE_Z)      # over "now": visible where the two are equal
        self._style_befores(dark=False)
        # a legend's room depends on the plot's size: place it again when the window is resized
        for plot, draw in ((self.conf_plot, self._draw_conf), (self.layer_plot, self._draw_layers),
                           (self.chan_plot, self._redraw_channels)):
            plot.getViewBox().sigResized.connect(lambda *_, d=draw: self._redraw(d))

    def _style_befores(self, dark: bool) -> None:
        for curve, color in self._befores:
            shade = BEFORE_SHADE[color][1 if dark else 0]
            curve.setPen(pg.mkPen(shade, width=1, style=Qt.PenStyle.DashLine))

    def _set_title(self, plot, long: str, short: str) -> None:
        self._titles[id(plot)] = (long, short)
        self._fit_title(plot)

    def _fit_title(self, plot) -> None:
        # a title wider than its plot pushes the plot out of its cell (clipped by the next dock)
        if id(plot) not in self._titles:
            return      # still being built
        long, short = self._titles[id(plot)]
        widget = self.widgets[self.plot_items().index(plot)]
        if plot is getattr(self, "prob_plot", None):
            self._class_ticks()
        plot.setTitle(long, size=TITLE_SIZE, color=self._fg)
        room = widget.width() - plot.getAxis("left").width() - 10   # the title sits over the view box only
        if plot.titleLabel.itemRect().width() > room:
            plot.setTitle(short, size=TITLE_SIZE, color=self._fg)
            plot.setGeometry(widget.range)   # lay out again at the smaller minimum

    def _redraw(self, draw) -> None:
        if draw not in self._dirty:
            self._dirty.append(draw)

    def plot_items(self):
        return [w.getPlotItem() for w in self.widgets]

    # -- data -----------------------------------------------------------------------------------------
    def set_context(self, classes, label: int | None, source_norm: dict | None = None,
                    adapts: bool | None = None) -> None:
        self.classes = list(classes or [])
        self.label = label
        if source_norm is not None:
            self.source_norm = source_norm
        if adapts is not None:
            self.adapts = adapts
        self._class_ticks()
        self.prob_plot.setXRange(-0.6, max(len(self.classes), 1) - 0.4, padding=0)

    def _class_ticks(self, *_) -> None:
        width = self.widgets[1].width() - self.prob_plot.getAxis("left").width()
        self.prob_plot.getAxis("bottom").setTicks([class_ticks(self.classes, width)])

    def clear(self, message: str = "") -> None:
        """A new episode (or, with `message`, none: the plots say why). Ranges start afresh: nothing of the
        previous method or image stays on an axis."""
        self.message = message
        for p in (self.loss_plot, self.conf_plot, self.layer_plot, self.chan_plot):
            p.getViewBox().setRange(xRange=(0, 1), yRange=(0, 1), padding=0.05)
            p.enableAutoRange()
        self.cos_plot.setXRange(0, 1, padding=0.05)
        self.show_records(())

    def show_records(self, records) -> None:
        """Redraw everything from an episode's records (step 0 first), painting at once."""
        self.set_records(records)
        self.draw_pending(budget=None)

    def set_records(self, records) -> None:
        """Take new records; the plots are redrawn by draw_pending."""
        self._records = tuple(records)
        if self._records:
            self.message = ""
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

    def pending(self) -> bool:
        return bool(self._dirty)

    def point_counts(self) -> dict[str, int]:
        """How many points each per-step plot shows (for tests and the status bar)."""
        def n(item):
            x, _ = item.getData()
            return 0 if x is None else len(x)
        return {"loss": n(self.loss_curve), "entropy": n(self.entropy_curve), "confidence": n(self.conf_curve),
                "cosine": n(self.cos_curve)}

    def note(self, name: str) -> str:
        """The empty-state line a plot shows ("" when it shows data)."""
        return self.notes[name].text()

    def _empty(self) -> str:
        return self.message or NO_IMAGE

    def _step_range(self, plot) -> None:
        # every step plot shows steps 0..last, so their x axes line up and a one-step run is not a sliver
        last = self._records[-1].step if self._records else 1
        plot.setXRange(0, max(last, self.extra_steps, 1), padding=0.05)

    def _draw_loss(self):
        lossy = [r for r in self._records if r.loss is not None]
        self.loss_curve.setData([r.step for r in lossy], [float(r.loss) for r in lossy])
        self._step_range(self.loss_plot)
        if not self._records:
            note = self._empty()
        elif not self.adapts:
            note = "source does not adapt: no loss"
        else:
            note = "" if lossy else NO_STEP
        self.notes["loss"].set(note)
        return self.widgets[0]

    def _draw_conf(self):
        recs = self._records
        steps = np.array([r.step for r in recs], dtype=float)
        self.entropy_curve.setData(steps, [float(r.entropy) for r in recs])
        self.conf_curve.setData(steps, [float(r.confidence) for r in recs])
        self._step_range(self.conf_plot)
        self._place[id(self.conf_plot)] = place_legend(self.conf_plot, (self.entropy_curve, self.conf_curve),
                                                       self._place.get(id(self.conf_plot)))
        self.notes["conf"].set("" if recs else self._empty())
        return self.widgets[2]

    def _draw_cos(self):
        recs = self._records
        cos = [r for r in recs if r.grad_cosine is not None]
        self.cos_curve.setData([r.step for r in cos], [float(r.grad_cosine) for r in cos])
        self._step_range(self.cos_plot)
        if not recs:
            note = self._empty()
        elif cos:
            note = ""
        elif self.label is None:
            note = "label unknown: the cosine needs the true class"
        elif not self.adapts:
            note = "source does not adapt: no gradient"
        elif len(recs) == 1:
            note = NO_STEP
        else:
            note = "not measured for this method"
        self.notes["cosine"].set(note)
        return self.widgets[3]

    def _draw_probs(self):
        recs = self._records
        self.notes["probs"].set("" if recs else self._empty())
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
            self.notes["layers"].set(self._empty() if not recs else "the model has no norm layers")
            return self.widgets[4]
        first, last = recs[0].layers, recs[-1].layers
        if not np.isfinite([s.mean_dist for s in first]).any():
            self.notes["layers"].set("the checkpoint has no source statistics")
        else:
            self.notes["layers"].set("")
        x = np.arange(len(first), dtype=float)
        self.mean_before.setData(x, [float(s.mean_dist) for s in first])
        self.var_before.setData(x, [float(s.var_dist) for s in first])
        self.mean_now.setData(x[:len(last)], [float(s.mean_dist) for s in last])
        self.var_now.setData(x[:len(last)], [float(s.var_dist) for s in last])
        curves = (self.mean_before, self.mean_now, self.var_before, self.var_now)
        self._place[id(self.layer_plot)] = place_legend(self.layer_plot, curves, self._place.get(id(self.layer_plot)))
        names = [s.name for s in first]
        if names != self._layer_names:
            self._layer_names = names
            self.layer_box.set_names(names, keep=self.layer_box.currentText())
            self._redraw(self._redraw_channels)   # it may have drawn first, from the empty box
        return self.widgets[4]

    def _redraw_channels(self, *_):
        recs = self._records
        i = self.layer_box.currentIndex()
        if not recs or i < 0 or not recs[0].layers or i >= len(recs[0].layers):
            for c in (self.chan_source, self.chan_before, self.chan_now):
                c.setData([], [])
            self.notes["channels"].set(self._empty() if not recs else "the model has no norm layers")
            return self.widgets[5]
        self.notes["channels"].set("")
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
        moment = "variance" if var else "mean"
        self._set_title(self.chan_plot, f"Channel {moment}: {before.name}", f"Channel {moment}")
        self.chan_plot.setLabel("left", f"activation {'variance' if var else 'mean'}", **LABEL_STYLE)
        curves = (self.chan_source, self.chan_before, self.chan_now)
        self._place[id(self.chan_plot)] = place_legend(self.chan_plot, curves, self._place.get(id(self.chan_plot)))
        return self.widgets[5]

    # -- appearance -----------------------------------------------------------------------------------
    def set_dark(self, dark: bool) -> None:
        bg, fg = ((30, 30, 30), (220, 220, 220)) if dark else ((255, 255, 255), (40, 40, 40))
        for w in self.widgets:
            w.setBackground(bg)
        self._style_befores(dark)
        for p in self.plot_items():
            for side in ("left", "bottom"):
                ax = p.getAxis(side)
                ax.setPen(pg.mkPen(fg))
                ax.setTextPen(pg.mkPen(fg))
            self._fg = pg.mkColor(fg)
            self._fit_title(p)
            if p.legend is not None:
                p.legend.setBrush(pg.mkBrush(*bg, 210))
                p.legend.setLabelTextColor(pg.mkColor(fg))
