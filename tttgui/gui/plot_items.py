"""Small pyqtgraph pieces the live plots share: an integer step axis, notes for empty plots, legends that keep
off the curves, class names that fit their bars."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

# Where a legend may sit, in order of preference: its anchor on the plot's edge (x, y from the top left; the
# legend's own anchor is the same point), corners first, then the middles of the edges.
PLACES = ((1, 0), (0, 0), (1, 1), (0, 1), (1, .5), (0, .5), (.5, 0), (.5, 1))
TITLE_SIZE = "10pt"
LABEL_STYLE = {"font-size": "9pt"}


class StepAxis(pg.AxisItem):
    """Steps are whole numbers: no fractional ticks and no SI prefix ("step (x0.001)") on a one-step range."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickSpacing(self, minVal, maxVal, size):
        levels = [(max(1.0, float(np.ceil(spacing))), 0) for spacing, _ in super().tickSpacing(minVal, maxVal, size)]
        return list(dict.fromkeys(levels))

    def tickStrings(self, values, scale, spacing):
        return [str(int(round(v))) for v in values]


class PlotWidget(pg.PlotWidget):
    """A PlotWidget that tells its owner when it was resized (titles and class names are fitted then)."""

    def __init__(self, on_resize, **kwargs):
        self._on_resize = None       # the base class resizes while it is built
        super().__init__(**kwargs)
        self._on_resize = on_resize

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._on_resize is not None:
            self._on_resize(self.getPlotItem())


class Note:
    """A grey line in the middle of a plot saying why it shows nothing ("" hides it)."""

    def __init__(self, plot):
        self.plot = plot
        self.item = pg.TextItem("", color=(120, 120, 120), anchor=(0.5, 0.5))
        plot.addItem(self.item, ignoreBounds=True)

    def set(self, text: str) -> None:
        self.item.setText(text)
        self.item.setVisible(bool(text))
        if text:
            (x0, x1), (y0, y1) = self.plot.getViewBox().viewRange()
            self.item.setPos((x0 + x1) / 2, (y0 + y1) / 2)

    def text(self) -> str:
        return self.item.toPlainText() if self.item.isVisible() else ""


def place_legend(plot, curves, current: int | None) -> int | None:
    """Put the legend where it covers the fewest curve points; where every place covers some, it goes to the top
    right and the y range grows so it sits above the curves. Returns the place used (index into PLACES)."""
    legend, vb = plot.legend, plot.getViewBox()
    vb.enableAutoRange(axis=pg.ViewBox.YAxis)
    vb.updateAutoRange()                      # the range the new data will be shown in, before the paint
    found = _legend_place(plot, curves, current)
    if found is None:
        return current
    best, hits = found
    if hits:
        best = 0
        (_, _), (y0, y1) = vb.viewRange()
        frac = min((legend.boundingRect().height() + 8) / max(vb.boundingRect().height(), 1.0), 0.6)
        vb.setYRange(y0, y1 + (y1 - y0) * frac / (1 - frac), padding=0)
    if best != current:
        ax, ay = PLACES[best]
        offset = (5 * (1 - 2 * ax) if ax != .5 else 0, 5 * (1 - 2 * ay) if ay != .5 else 0)
        legend.anchor(itemPos=(ax, ay), parentPos=(ax, ay), offset=offset)
    return best


def _legend_place(plot, curves, current: int | None) -> tuple[int, int] | None:
    """(place, points covered) for the place covering the fewest points of the curves, the current one on a tie;
    None when the plot has no size or data yet."""
    legend, vb = plot.legend, plot.getViewBox()
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
    best = min(range(len(PLACES)), key=lambda i: (hits[i], i != current, i))
    return best, hits[best]


def class_ticks(classes, pixels: float) -> list[tuple[int, str]]:
    """Tick labels for the class bars, cut to what fits the plot's width (about 7 px a character)."""
    n = max(int(pixels / max(len(classes), 1) / 7), 2)
    return [(i, name if len(name) <= n else name[:n - 1] + "." if n > 3 else name[:n])
            for i, name in enumerate(classes)]
