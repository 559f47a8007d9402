"""The scripted run (docs screenshots, checks): select an image, set shift and method, run N steps through the
worker like a user would, then save the window as PNG (and the history CSV) and close with an exit code.
"""
from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QTimer, Slot


class ScriptedRun(QObject):
    def __init__(self, window, opts):
        super().__init__(window)
        self.window, self.opts = window, opts
        self.exit_code = 1
        self.phase = "model"          # model -> image -> run -> done
        window.model_loaded.connect(self._configure)
        window.image_ready.connect(self._image_ready)
        window.run_done.connect(self._run_done)
        window.error.connect(self._error)

    @Slot()
    def _configure(self) -> None:
        w, o = self.window, self.opts
        if self.phase != "model":
            return
        if w.dataset is None:
            return self._fail(w.last_error or f"no data set open ({o.data})")
        if o.corruption is not None and not w.shift_panel.set_choice(o.corruption, o.severity or 5):
            return self._fail(f"unknown corruption {o.corruption!r}; expected one of "
                              f"{', '.join(w.shift_panel.corruption.itemText(i) for i in range(w.shift_panel.corruption.count()))}")
        if o.corruption is None and o.severity is not None:
            w.shift_panel.severity.setValue(o.severity)
        if o.method is not None and not w.method_panel.set_method(o.method):
            names = w.method_panel.names()
            return self._fail(f"unknown method {o.method!r}; expected one of {', '.join(names)}")
        if o.steps is not None:
            w.method_panel.steps.setValue(o.steps)
            w.run_steps.setValue(max(o.steps, 1))
        if not 0 <= o.image < len(w.dataset):
            return self._fail(f"image index {o.image} out of range; the data set has {len(w.dataset)} images")
        self.phase = "image"
        w.data_panel.select_index(o.image)
        w.select_image(o.image)

    @Slot()
    def _image_ready(self) -> None:
        if self.phase == "image":
            self.phase = "run"
            QTimer.singleShot(0, self.window.run)

    @Slot(str)
    def _run_done(self, status: str) -> None:
        if self.phase != "run":
            return
        self.phase = "done"
        self.status = status
        QTimer.singleShot(150, self._finish)  # let the redraw timer and the views preview land first

    def _finish(self) -> None:
        self.window._pull()
        # the pull re-ranges the plots; their axes re-centre the labels on the layout pass that follows
        QTimer.singleShot(50, self._save)

    def _save(self) -> None:
        w, o = self.window, self.opts
        ok = w.save_png(o.screenshot)
        if ok and o.export:
            ok = w.export_statistics(o.export)
        if not ok:
            return self._fail(w.last_error)
        rec = w.controller.buffer.snapshot()[2]
        print(f"tttgui: {len(rec) - 1} step(s), status {self.status}; screenshot {o.screenshot}"
              + (f", statistics {o.export}" if o.export else ""))
        self.exit_code = 0 if self.status == "done" else 1
        w.close()

    @Slot(str)
    def _error(self, message: str) -> None:
        if self.phase in ("model", "image", "run"):
            self._fail(message)

    def _fail(self, message: str) -> None:
        if self.phase == "failed":
            return
        self.phase = "failed"
        print(f"tttgui: error: {message}", file=sys.stderr)
        self.exit_code = 2
        QTimer.singleShot(0, self.window.close)
