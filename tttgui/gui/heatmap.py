"""The batch grid as a heatmap: corruptions down, severities (per method) across, each cell's value written in
it, a colour bar beside it; error before adaptation, after, or the change. A cell the batch was cancelled
during (fewer images than asked) is marked with '*'; a cell never reached is grey and says so."""
from __future__ import annotations

import textwrap

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from tttgui.results import CLEAN

MODES = ("after", "before", "change")
WRAP = 21       # characters of a column's label line before the plot has a width to measure
TITLES = {"after": "Error after adaptation (%)", "before": "Error without adaptation (%)",
          "change": "Change in error (after − before, points)"}


def grid_values(summary, mode: str, asked: int, planned=()):
    """(rows, columns, values, partial) of the heatmap over the planned (corruption, severity, method) cells
    and those in the summary. Columns are (method, severity), grouped by method; 'before' is the source model's,
    the same for every method, so it has one column per severity."""
    keys = list(planned) + [(s.corruption, s.severity, s.method) for s in summary]
    rows = list(dict.fromkeys(c for c, _, _ in keys))
    methods = list(dict.fromkeys(m for _, _, m in keys))
    cols = sorted(dict.fromkeys(("" if mode == "before" else m, sev) for _, sev, m in keys),
                  key=lambda col: (methods.index(col[0]) if col[0] else 0, col[1]))
    values = np.full((len(rows), len(cols)), np.nan)
    partial = np.zeros(values.shape, bool)
    # 'before' shares one cell among the methods: the most images wins (a cancelled method's partial cell must not
    # replace a complete one's value, nor the other way round)
    for s in sorted(summary, key=lambda s: s.n) if mode == "before" else summary:
        col = ("" if mode == "before" else s.method, s.severity)
        before, after = s.error_before, s.error_after
        v = {"before": before, "after": after,
             "change": None if before is None or after is None else after - before}[mode]
        i, j = rows.index(s.corruption), cols.index(col)
        values[i, j] = np.nan if v is None else v
        partial[i, j] = s.n < asked
    return rows, cols, values, partial


def column_label(method: str, severity: int, methods: int, names=None, severities: int = 1,
                 width: int = WRAP) -> str:
    """A column's tick: the severity, and with several methods the method's name as the user reads it ('Tent (GN
    affine)') in at most two lines of `width` characters (a taller axis would push the Batch tab into a scroll
    bar at 720 px): the name over two lines when the grid has one severity, else one line of name over the
    severity. A name that does not fit gives way to the registry name ('aws-mean'), short and distinct, where
    cut names could read alike ('AWS…' for aws and aws-mean); the note's tooltip says what each stands for."""
    sev = "clean" if severity == 0 else f"s{severity}"
    if methods <= 1 or not method:
        return sev
    lines = 1 if severities > 1 else 2
    name = (names or {}).get(method, method)
    text = "\n".join(textwrap.wrap(name, width)) if fits(name, width, lines) else method   # a code is never cut
    return text + ("\n" + sev if severities > 1 else "")


def fits(name: str, width: int, lines: int) -> bool:
    return len(textwrap.wrap(name, width)) <= lines


class Heatmap(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.summary: list = []
        self.planned: list = []   # every (corruption, severity, method) the batch was to run
        self.names: dict = {}     # registry name -> the name the user reads
        self.columns: list = []   # (method, severity) per column, as drawn
        self.notes: list = []     # what the note says besides the columns' key
        self.asked = 0
        self.mode = QComboBox()
        self.mode.addItems(["error after adaptation", "error without adaptation", "change (after − before)"])
        self.mode.currentIndexChanged.connect(self.redraw)
        self.note = QLabel("")
        self.note.setStyleSheet("color: gray")
        self.note.setWordWrap(True)
        self.note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)   # never widens the tab
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.getViewBox().invertY(True)
        self.plot.getViewBox().setBackgroundColor((225, 225, 225))   # cells never reached show as grey
        self.plot.getViewBox().sigResized.connect(self._label_columns)   # labels wrap to the columns' width
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.bar = pg.ColorBarItem(values=(0, 100), colorMap=pg.colormap.get("viridis"), interactive=False,
                                   width=14)
        self.bar.setImageItem(self.image, insert_in=self.plot.getPlotItem())
        self.texts: list[pg.TextItem] = []
        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.mode)
        top.addWidget(self.note, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)

    def sizeHint(self):
        # a plot asks for 480 px; in the Batch tab's scroll area that would push the grid out of view
        return QSize(480, 180)

    def current_mode(self) -> str:
        return MODES[self.mode.currentIndex()]

    def set_mode(self, mode: str) -> None:
        self.mode.setCurrentIndex(MODES.index(mode))

    def set_summary(self, summary, asked: int, planned=(), names=None) -> None:
        self.summary, self.asked, self.planned = list(summary), asked, list(planned)
        self.names = dict(names or {})
        self.redraw()

    def _label_columns(self) -> None:
        """The columns' ticks, wrapped to the width a column has now (labels of narrow columns overlapped)."""
        cols = self.columns
        if not cols:
            return
        axis = self.plot.getAxis("bottom")
        metrics = QFontMetrics(axis.font())
        px = self.plot.getPlotItem().getViewBox().width() / len(cols)
        width = max(6, int(px / metrics.averageCharWidth()) - 1) if px > 0 else WRAP
        methods, severities = len({m for m, _ in cols}), len({s for _, s in cols})
        ticks = [(j + 0.5, column_label(m, s, methods, self.names, severities, width))
                 for j, (m, s) in enumerate(cols)]
        axis.setTicks([ticks])
        lines = max(label.count("\n") + 1 for _, label in ticks)   # pyqtgraph sizes the axis for one line
        axis.setHeight(None if lines == 1 else 10 + lines * metrics.lineSpacing())
        short = {m: self.names[m] for m, _ in cols if m in self.names and self.names[m] != m
                 and not fits(self.names[m], width, 1 if severities > 1 else 2)}
        key = "; ".join(f"{m} = {n}" for m, n in short.items()) if short and methods > 1 else ""
        # the key itself as a tooltip: written out it took three lines and pushed the grid off a 720-px dock
        self.note.setText("; ".join(self.notes + (["columns: registry names, full ones on hover"] if key else [])))
        self.note.setToolTip(key)

    def cell_texts(self) -> list[str]:
        return [t.textItem.toPlainText() for t in self.texts]

    def redraw(self, *_) -> None:
        mode = self.current_mode()
        for t in self.texts:
            self.plot.removeItem(t)
        self.texts = []
        self.plot.setTitle(TITLES[mode], size="10pt")
        if not self.summary:
            self.image.clear()
            self.note.setText("")
            self.columns, self.notes = [], []
            return
        rows, cols, values, partial = grid_values(self.summary, mode, self.asked, self.planned)
        if mode == "change":
            top = max(1.0, float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0)
            levels, cmap = (-top, top), pg.colormap.get("CET-D1")   # blue: adaptation helped, red: it hurt
        else:
            levels, cmap = (0.0, 100.0), pg.colormap.get("viridis")
        self.bar.setColorMap(cmap)
        self.bar.setLevels(levels)
        self.image.setImage(values, levels=levels)
        self.image.setRect(0, 0, len(cols), len(rows))
        # a grid of clean plus severities has cells nobody asked for (the clean row under s5): blank, not "not run"
        asked = {(c, ("" if mode == "before" else m, sev)) for c, sev, m in self.planned}
        asked |= {(x.corruption, ("" if mode == "before" else x.method, x.severity)) for x in self.summary}
        for i in range(len(rows)):
            for j in range(len(cols)):
                v = values[i, j]
                gap = "not run" if (rows[i], cols[j]) in asked else ""
                text = gap if np.isnan(v) else f"{v:+.1f}" if mode == "change" else f"{v:.1f}"
                text += "*" if partial[i, j] else ""
                # white on viridis' dark end; the diverging map is light enough for black everywhere
                dark = mode != "change" and not np.isnan(v) and (v - levels[0]) / (levels[1] - levels[0]) < 0.55
                item = pg.TextItem(text, color="w" if dark else "k", anchor=(0.5, 0.5))
                item.setPos(j + 0.5, i + 0.5)
                self.plot.addItem(item)
                self.texts.append(item)
        self.plot.getAxis("left").setTicks([[(i + 0.5, "clean" if c == CLEAN else c) for i, c in enumerate(rows)]])
        self.columns = cols
        self.plot.setRange(xRange=(0, len(cols)), yRange=(0, len(rows)), padding=0)
        notes = (["* partial: cancelled during this cell (fewer images than asked)"] if partial.any() else []) + (
            ["grey: not run (cancelled before it)"] if np.isnan(values).any() and len(self.summary) < len(
                self.planned) else [])
        self.notes = notes
        self._label_columns()       # ticks and the note, which keys any registry name a column shows
