"""Side by side: pin an episode and its curves stay on the plots, dashed, while another method runs on the same
image; a History row's episode can be shown again. The pinned curves show only while the current episode is on
the pinned image and shift (a curve of another image would compare nothing)."""
from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtWidgets import QLabel

from tttgui.gui import engine
from tttgui.gui.plots import ACCENT, GREEN, NOW

PINNED = "#7b3294"


@dataclass(frozen=True)
class Pin:
    key: tuple            # (image index, corruption, severity)
    method: str
    records: tuple
    text: str


def episode_key(index, corruption, severity) -> tuple:
    return int(index), str(corruption), 0 if corruption == "none" else int(severity)


class Compare(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.pin: Pin | None = None
        self.viewing: int | None = None     # the History row whose plots are shown, None: the live episode
        plots = window.plots
        dash = Qt.PenStyle.DashLine
        self.curves = {
            "loss": plots.loss_plot.plot([], [], pen=pg.mkPen(PINNED, width=2, style=dash)),
            "entropy": plots.conf_plot.plot([], [], pen=pg.mkPen(ACCENT, width=1.5, style=dash)),
            "confidence": plots.conf_plot.plot([], [], pen=pg.mkPen(GREEN, width=1.5, style=dash)),
            "cosine": plots.cos_plot.plot([], [], pen=pg.mkPen(PINNED, width=2, style=dash)),
        }
        self.label = QLabel("")
        self.label.setStyleSheet(f"color: {PINNED}")
        self.label.setWordWrap(True)
        self.label.setVisible(False)
        plots.layout().insertWidget(1, self.label)
        self.solid = {"loss": NOW}

    # -- pinning --------------------------------------------------------------------------------------
    def pin_current(self) -> bool:
        win = self.window
        ep = win.episode
        _, ep_id, records = win.controller.buffer.snapshot()
        if ep is not None and ep_id != ep.id:   # the image just picked is not ready: the buffer holds the last one's
            win.report("pin needs this image's episode: wait until it is shown, then Step (F10)")
            return False
        if ep is None or len(records) < 2:
            win.report("pin needs an adapted episode: Step (F10) first")
            return False
        return self._pin(episode_key(ep.index, ep.corruption, ep.severity), ep.config.method, records)

    @Slot(int)
    def pin_row(self, number: int) -> bool:
        row = next((r for r in self.window.history.rows if r.row == number), None)
        records = self.window.history.records.get(number)
        if row is None or not records:
            return False
        return self._pin(episode_key(row.index, row.corruption, row.severity), row.method, records)

    def _pin(self, key, method, records) -> bool:
        last = records[-1]
        loss = [r.loss for r in records if r.loss is not None]
        text = (f"Pinned (dashed): {self.window.method_label(method)} on image {key[0]}, {key[1]}"
                + (f" s{key[2]}" if key[2] else "") + f", {last.step} step(s)"
                + (f", loss {loss[0]:.3f} → {loss[-1]:.3f}" if loss else "")
                + f", confidence {records[0].confidence:.0%} → {last.confidence:.0%}")
        self.pin = Pin(key, method, tuple(records), text)
        self.follow()
        return True

    def unpin(self) -> None:
        self.pin = None
        self.follow()

    @Slot()
    def follow(self) -> None:
        """Show the pinned curves when the plots show the pinned image under the pinned shift."""
        win = self.window
        ep = win.episode
        shown = None
        if self.viewing is not None:
            row = next((r for r in win.history.rows if r.row == self.viewing), None)
            shown = row and episode_key(row.index, row.corruption, row.severity)
        elif ep is not None:
            shown = episode_key(ep.index, ep.corruption, ep.severity)
        on = self.pin is not None and shown == self.pin.key
        recs = self.pin.records if on else ()
        steps = [r.step for r in recs]
        lossy = [r for r in recs if r.loss is not None]
        cos = [r for r in recs if r.grad_cosine is not None]
        self.curves["loss"].setData([r.step for r in lossy], [float(r.loss) for r in lossy])
        self.curves["entropy"].setData(steps, [float(r.entropy) for r in recs])
        self.curves["confidence"].setData(steps, [float(r.confidence) for r in recs])
        self.curves["cosine"].setData([r.step for r in cos], [float(r.grad_cosine) for r in cos])
        win.plots.extra_steps = steps[-1] if steps else 0
        if self.pin is None:
            self.label.setVisible(False)
        else:
            self.label.setText(self.pin.text if on else self.pin.text + " — not shown: the plots show another "
                               "image or shift")
            self.label.setVisible(True)

    def visible_points(self) -> int:
        x, _ = self.curves["loss"].getData()
        return 0 if x is None else len(x)

    # -- History rows ---------------------------------------------------------------------------------
    @Slot(int)
    def show_row(self, number: int) -> bool:
        """Draw a History row's episode again (until the live episode records a new step)."""
        win = self.window
        row = next((r for r in win.history.rows if r.row == number), None)
        records = win.history.records.get(number)
        if row is None or not records:
            win.report(f"history row {number} has no plots (it was recorded before this window kept them)")
            return False
        classes = (win.model_info or {}).get("classes", [])
        label = classes.index(row.label) if row.label in classes else None
        self.viewing = number
        win.plots.set_context(classes, label, adapts=engine.method_adapts(row.method))
        win.plots.clear()
        win.plots.show_records(records)
        self.follow()
        win.plots.summary.setText(f"History row {number}: {win.method_label(row.method)} on image {row.index}, "
                                  f"{row.corruption}"
                                  f" s{row.severity} (Step goes on with the current image)")
        return True

    def live(self) -> None:
        """The live episode is drawn again (a new episode or a new step): its own context, the pin if it fits."""
        win, ep = self.window, self.window.episode
        if self.viewing is not None and ep is not None and win.model_info:
            win.plots.set_context(win.model_info["classes"], ep.label, adapts=engine.method_adapts(ep.config.method))
        self.viewing = None
        self.follow()
