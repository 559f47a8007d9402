"""The main window: panels on the left, live plots in the middle, gallery on the right, history below.

The GUI thread never waits on the model: every model operation is a queued command to the worker, and the
plots are refreshed by a 30 Hz timer that reads the worker's record buffer.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QScrollArea, QSpinBox, QStackedWidget, QTabWidget,
                               QToolBar, QVBoxLayout, QWidget)

from tttgui.gui import engine
from tttgui.gui.errors import one_line
from tttgui.gui.history import build_row
from tttgui.gui.compare import Compare
from tttgui.gui.history_view import HistoryPane, HistoryTableModel
from tttgui.gui.panels.data_panel import DataPanel
from tttgui.gui.panels.method_panel import MethodPanel
from tttgui.gui.panels.model_panel import ModelPanel
from tttgui.gui.panels.shift_panel import ShiftPanel
from tttgui.gui.plots import LivePlots
from tttgui.gui.welcome import WelcomePage
from tttgui.gui.window_files import WindowFiles
from tttgui.gui.worker import WorkerController

REDRAW_MS = 33   # at most ~30 redraws a second
SETTINGS_WIDTH, DATA_WIDTH = 320, 180   # with the plots' 480 px the window fits a 1024 px screen


@dataclass(frozen=True)
class WindowOptions:
    checkpoint: str | None = None     # None: the shipped checkpoint
    data: str | None = None           # None: the last folder from the settings
    device: str | None = None         # None: the settings' choice
    interactive: bool = True          # False (scripted runs, tests): errors do not open dialogs


@dataclass
class Episode:
    """One image under one shift and one method configuration; becomes one history row once adapted."""

    id: int
    index: int
    label: int | None
    corruption: str
    severity: int
    config: object
    source: str
    row: int | None = None
    checkpoint: str = ""      # the model loaded when the episode began (a new model starts a new episode)
    item: str = ""            # the image as the data set names it (its file), for the History table


def default_size(available) -> tuple[int, int]:
    """1500×950, or what a smaller screen has room for (a laptop's 1280×720 gets the whole screen). Offscreen
    (tests, scripted runs) has no real screen: always 1500×950, the same screenshot on every machine."""
    if QApplication.platformName() == "offscreen":
        return 1500, 950
    return min(1500, available.width()), min(950, available.height())


class MainWindow(WindowFiles, QMainWindow):
    model_loaded = Signal()
    image_ready = Signal()
    run_done = Signal(str)
    error = Signal(str)
    download_finished = Signal(str, str)   # folder, error (one of them empty)

    def __init__(self, options: WindowOptions, settings, session_factory=None):
        super().__init__()
        self.options, self.settings = options, settings
        self.setWindowTitle("tttgui — test-time training explorer")
        self.setAcceptDrops(True)
        self.model_info: dict | None = None
        self.dataset = self.labels = None
        self.index: int | None = None
        self.clean = self.shifted = self.shown_views = None
        self.raw_label = self.current_label = None
        self.episode: Episode | None = None
        self._episodes: dict[int, Episode] = {}
        self._next_episode = 0
        self.running = False
        self.stepping = False      # the run going is one started by Step: more presses queue behind it
        self.queued = 0            # Step presses waiting for the run going
        self.loading = False
        self.remaining = 0
        self.requested = 0
        self.last_error = ""
        self._dialogs: list = []
        self._seen_version = -1
        self._next_draw = 0.0

        self.controller = WorkerController(session_factory, self)
        w = self.controller.worker
        w.model_ready.connect(self._model_ready)
        w.load_failed.connect(self._load_failed)
        w.shifted_ready.connect(self._shifted_ready)
        w.image_failed.connect(self._image_failed)
        w.session_failed.connect(self._session_failed)
        w.image_ready.connect(self._image_ready)
        w.views_ready.connect(self._views_ready)
        w.run_finished.connect(self._run_finished)
        w.failed.connect(self.report)
        self.controller.busy_changed.connect(self._update_actions)

        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._pull)
        self._restart = QTimer(self)         # debounce shift/method edits into one new episode
        self._restart.setSingleShot(True)
        self._restart.setInterval(150)
        self._restart.timeout.connect(self._start_episode)

        self._build_panels()
        self._build_actions()
        self._build_status()
        self._restore()
        self.timer.start()
        self._update_actions()

    # -- construction ---------------------------------------------------------------------------------
    def _build_panels(self) -> None:
        import torch

        devices = ["auto", "cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        self.model_panel = ModelPanel(devices)
        self.shift_panel = ShiftPanel()
        self.method_panel = MethodPanel()
        self.data_panel = DataPanel()
        self.plots = LivePlots()
        self.welcome = WelcomePage()

        left = QWidget()
        lay = QVBoxLayout(left)
        for p in (self.model_panel, self.shift_panel, self.method_panel):
            lay.addWidget(p)
        lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(SETTINGS_WIDTH)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.settings_scroll = scroll
        self._dock("Settings", scroll, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Data", self.data_panel, Qt.DockWidgetArea.RightDockWidgetArea).setMinimumWidth(DATA_WIDTH)
        # Settings run the full height (History sits beside them, not under): on a 720 px screen the model,
        # shift and method then show without scrolling.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.history = HistoryTableModel(self)
        self.history_pane = HistoryPane(self.history)
        self.history_view = self.history_pane.table
        self.tabs = QTabWidget()
        self.tabs.addTab(self.history_pane, "History")
        self.history_dock = self._dock("History", self.tabs, Qt.DockWidgetArea.BottomDockWidgetArea)

        self.center = QStackedWidget()
        self.center.addWidget(self.welcome)
        self.center.addWidget(self.plots)
        self.setCentralWidget(self.center)

        self.model_panel.open_requested.connect(self.open_checkpoint_dialog)
        self.model_panel.checkpoint_chosen.connect(self.load_checkpoint)
        self.model_panel.device_changed.connect(self._device_changed)
        self.data_panel.open_folder.connect(self.open_folder_dialog)
        self.data_panel.open_image.connect(self.open_image_dialog)
        self.data_panel.image_selected.connect(self.select_image)
        self.welcome.open_folder.connect(self.open_folder_dialog)
        self.welcome.open_image.connect(self.open_image_dialog)
        self.welcome.download.connect(self.download_cifar)
        self.download_finished.connect(self._download_done)
        self.shift_panel.changed.connect(self._shift_changed)
        self.method_panel.changed.connect(self._method_changed)

    def _dock(self, title: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text, slot, shortcut=None, menu=None, toolbar=None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            keys = shortcut if isinstance(shortcut, list) else [shortcut]
            act.setShortcuts([QKeySequence(k) for k in keys])
        act.triggered.connect(slot)
        if shortcut is not None:   # toolbar buttons say their keys
            act.setToolTip(f"{text.replace('&', '').rstrip('…')} ({', '.join(k.toString() for k in act.shortcuts())})")
        if menu is not None:
            menu.addAction(act)
        if toolbar is not None:
            toolbar.addAction(act)
        return act

    def _build_actions(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self._action("Open &Image…", self.open_image_dialog, QKeySequence.StandardKey.Open, file)
        self._action("Open &Folder…", self.open_folder_dialog, "Ctrl+Shift+O", file)
        self._action("Open &Checkpoint…", self.open_checkpoint_dialog, "Ctrl+Shift+M", file)
        self.recent_menu = file.addMenu("Recent Checkpoints")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addSeparator()
        self.export_action = self._action("&Export Statistics…", self.export_dialog, "Ctrl+E", file)
        self._action("Export &Plots (PNG, SVG)…", lambda: self.export_image_dialog(plots=True), "Ctrl+Shift+E", file)
        self._action("Export &Window (PNG, SVG)…", lambda: self.export_image_dialog(plots=False), None, file)
        file.addSeparator()
        self._action("&Quit", self.close, QKeySequence.StandardKey.Quit, file)

        run = bar.addMenu("&Run")
        tb = self.toolbar = QToolBar("Controls")
        tb.setObjectName("controls")
        self.addToolBar(tb)
        self.step_action = self._action("Step", self.step, "F10", run, tb)
        self.run_action = self._action("Run", self.run, "F5", run, tb)
        self.run_steps = QSpinBox()
        self.run_steps.setRange(1, 100000)
        self.run_steps.setPrefix("N = ")
        self.run_steps.setToolTip("Steps for Run")
        tb.addWidget(self.run_steps)
        self.pause_action = self._action("Pause", self.pause, "F6", run, tb)
        self.stop_action = self._action("Stop", self.stop, ["Shift+F5", "Esc"], run, tb)
        self.reset_action = self._action("Reset", self.reset, "Ctrl+R", run, tb)
        run.addSeparator()
        self.batch_action = self._action("Batch Evaluation…", self.show_batch, "Ctrl+B", run)
        # side by side (tttgui.gui.compare): a pinned episode's curves stay, dashed, on the same image
        self.compare = Compare(self)
        self.history_pane.row_chosen.connect(self.compare.show_row)
        self.history_pane.pin_requested.connect(self.compare.pin_row)
        self.pin_action = self._action("Pin Episode for Comparison", self.compare.pin_current, "Ctrl+P", run)
        self._action("Unpin", self.compare.unpin, None, run)

        view = bar.addMenu("&View")
        for dock in self.findChildren(QDockWidget):
            view.addAction(dock.toggleViewAction())
        help_ = bar.addMenu("&Help")
        self._action("Keyboard Shortcuts", self._show_shortcuts, None, help_)
        self._action("About", self._show_about, None, help_)

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.step_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        self.device_label = QLabel("device: —")
        sb.addPermanentWidget(self.step_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.device_label)

    def _restore(self) -> None:
        s = self.settings
        self._auto_run_steps = self.run_steps.value()   # before load(): loading the method panel emits changed
        if s.get("geometry"):
            self.restoreGeometry(s.get("geometry"))
        else:
            self.resize(*default_size(self.screen().availableGeometry()))
            self.resizeDocks([self.history_dock], [max(100, self.height() // 6)], Qt.Orientation.Vertical)
        if s.get("window_state"):
            self.restoreState(s.get("window_state"))
        self.method_panel.load(s.get("method"))
        self.shift_panel.set_choice(s.get("corruption"), s.get("severity"))
        self.run_steps.setValue(s.get("run_steps"))
        self._auto_run_steps = self.run_steps.value()   # N as set for the user; their own N is kept
        device = self.options.device or s.get("device")
        i = self.model_panel.device.findText(device)
        self.model_panel.device.blockSignals(True)
        self.model_panel.device.setCurrentIndex(max(i, 0))
        self.model_panel.device.blockSignals(False)
        self._show_models(s.get("recent_checkpoints"))

    # -- start-up -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the checkpoint and the data set named by the options or the settings."""
        from tttgui.models import default_checkpoint_path

        self.statusBar().showMessage("Preparing torch…")
        engine.preload()
        path = self.options.checkpoint or str(default_checkpoint_path())
        if Path(path).is_file():
            self.load_checkpoint(path)
        else:
            text = f"No model: {Path(path).name} not found"
            self.model_panel.show_missing(text if self.options.checkpoint else
                                          f"The shipped model {path} is not present.")
            self.statusBar().showMessage(f"{text}; open a checkpoint (File ▸ Open Checkpoint…)")
            if self.options.checkpoint:
                self.report(f"checkpoint {path} not found; expected a tttgui checkpoint (.pt) file")
        data = self.options.data or self.settings.get("last_data")
        if data:
            self.open_data(data, quiet=not self.options.data)

    # -- model ----------------------------------------------------------------------------------------
    @Slot(str)
    def load_checkpoint(self, path: str) -> None:
        self.stop()
        self.loading = True
        self.model_panel.show_loading(path)
        self.statusBar().showMessage(f"Loading {path}…")
        self.controller.load_model(path, self.model_panel.device_choice())
        self._update_actions()

    @Slot(object)
    def _model_ready(self, info: dict) -> None:
        self.loading = False
        self.model_info = info
        self.model_panel.show_model(info)
        unusable = info.get("unusable", {})
        replaced = self.method_panel.show_names(info.get("method_names", {}), unusable)
        self.history.names = dict(info.get("method_names", {}))
        self.device_label.setText(info["device"])
        self._show_models(self.settings.add_recent(info["path"]))
        self.plots.set_context(info["classes"], None, info["source_norm"])
        self.statusBar().showMessage(f"Model {Path(info['path']).name} on {info['device']}", 5000)
        self._update_actions()
        self.model_loaded.emit()
        self._start_episode()
        if replaced:      # after the episode's own status line, which would hide it
            label = self.method_label(self.method_panel.name())
            self.statusBar().showMessage(f"{unusable[replaced]}: method set to {label}", 10000)

    def method_label(self, method: str) -> str:
        """A method's name as the user reads it on the loaded model ('Tent (GN affine)'); the registry name
        before a model is loaded."""
        return (self.model_info or {}).get("method_names", {}).get(method, method)

    @Slot(str, str)
    def _load_failed(self, path: str, message: str) -> None:
        """The model loaded before (if any) stays in use, and the panel says so again."""
        self.loading = False
        self.model_panel.restore(message)
        self._show_models(self.settings.drop_recent(path))
        self._update_actions()
        self.report(message)

    @Slot(str)
    def _device_changed(self, device: str) -> None:
        if self.model_info:
            self.load_checkpoint(self.model_info["path"])

    def _show_models(self, recent: list[str]) -> None:
        from tttgui.models.checkpoint import shipped_checkpoints

        self.model_panel.set_recent(recent, [str(p) for p in shipped_checkpoints()])

    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", self.settings.get("last_dir"),
                                              "Checkpoints (*.pt *.pth);;All files (*)")
        if path:
            self.settings.set("last_dir", str(Path(path).parent))
            self.load_checkpoint(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        paths = self.settings.get("recent_checkpoints")
        for p in paths:
            self.recent_menu.addAction(p, lambda p=p: self.load_checkpoint(p))
        self.recent_menu.setEnabled(bool(paths))

    # -- data -----------------------------------------------------------------------------------------
    def download_cifar(self) -> None:
        """Fetch in a plain thread (network I/O, no torch) so the window keeps responding; the result comes
        back through a queued signal."""
        self.welcome.set_busy("Downloading CIFAR-10 test set…")
        threading.Thread(target=self._download_job, name="tttgui-download", daemon=True).start()

    def _download_job(self) -> None:
        from tttgui.gui.datasets import download_dir

        try:
            self.download_finished.emit(str(download_dir()), "")
        except Exception as exc:  # noqa: BLE001 - offline machines land here
            self.download_finished.emit("", one_line(exc, "download failed"))

    @Slot(str, str)
    def _download_done(self, path: str, error: str) -> None:
        self.welcome.set_busy("")
        if error:
            self.report(error)
        else:
            self.open_data(path)

    @Slot(int)
    def select_image(self, index: int) -> None:
        if self.dataset is None:
            return
        self.index = index
        try:
            image, label, _ = self.dataset[index]
        except Exception as exc:  # noqa: BLE001
            self._no_image(one_line(exc, f"cannot read image {index}"))
            return
        self.clean = np.array(image, dtype=np.uint8, copy=True)
        self.raw_label = None if label is None or label < 0 else int(label)
        self._start_episode()

    def _no_image(self, message: str) -> None:
        """The selected image cannot be used: nothing of the previous one stays on screen or in the worker."""
        self._restart.stop()
        self.stop()
        self.clean = self.shifted = self.episode = None
        self.shift_panel.show_images(None, None)
        self.shift_panel.show_views("Views: no image", None)
        self.plots.clear(message)
        self.step_label.setText("")
        self._update_actions()
        self.report(message)

    @Slot()
    def _shift_changed(self) -> None:
        if self.clean is not None:
            self.shift_panel.show_images(self.clean, None, "corrupting…")
            self._restart.start()

    @Slot()
    def _method_changed(self) -> None:
        steps = self.method_panel.default_steps()
        # N follows the method's steps until the user sets N: an edit elsewhere must not undo their choice
        if steps and self.run_steps.value() == self._auto_run_steps:
            self.run_steps.setValue(steps)
            self._auto_run_steps = steps
        self._restart.start()
        self._update_actions()

    # -- episodes -------------------------------------------------------------------------------------
    @Slot()
    def _start_episode(self) -> None:
        """Send the current (shifted) image and method to the worker as a new episode."""
        if self.model_info is None or self.clean is None:
            return
        # This episode already has the latest edits: a debounced restart still pending would stop a run the user
        # starts next (a model that loads within the debounce did exactly that).
        self._restart.stop()
        try:
            config = self.method_panel.config()
        except Exception as exc:  # noqa: BLE001
            self.report(one_line(exc, "invalid method settings"))
            return
        if self.running:
            self.controller.stop()
        self.queued = 0
        self.current_label = self._model_label(self.raw_label)
        name, severity = self.shift_panel.choice()
        ep = Episode(self._next_episode, self.index, self.current_label, name, severity, config,
                     str(getattr(self.dataset, "source", "")),
                     checkpoint=str((self.model_info or {}).get("path", "")), item=self._item_name(self.index))
        self._next_episode += 1
        self._episodes[ep.id] = ep
        self.episode = ep
        self.shifted = None
        self.remaining = 0
        self.plots.set_context(self.model_info["classes"], self.current_label,
                               adapts=engine.method_adapts(config.method))
        self.plots.clear()
        self.compare.live()
        self.controller.set_image(self.clean, name, severity, self.current_label, self.index, config, ep.id)
        # a paused run of the previous episode cannot be resumed: the status must not offer it any more
        self.statusBar().showMessage(f"Image {self.index}: {name} s{severity}, {self.method_label(config.method)} "
                                     f"({config.protocol}) — step 0", 5000)
        self._update_actions()

    def _item_name(self, index) -> str:
        try:
            return str(self.dataset.item_name(index))
        except Exception:  # noqa: BLE001 - a name is only shown; the History falls back to the index
            return ""

    def _model_label(self, label: int | None) -> int | None:
        """The data set's label as the model's class index, matched by class name (None when the model does
        not know the class): a folder of two classes must not be read as the model's first two."""
        from tttgui.data.labels import model_label

        if self.model_info is None:
            return None
        return model_label(label, list(getattr(self.dataset, "classes", []) or []), self.model_info["classes"])

    @Slot(int)
    def _image_ready(self, episode: int) -> None:
        if self.episode is not None and episode == self.episode.id:
            self._pull(force=True)
            self.image_ready.emit()

    @Slot(int, object)
    def _shifted_ready(self, episode: int, shifted) -> None:
        if self.episode is not None and episode == self.episode.id:
            self.shifted = shifted
            self.shift_panel.show_images(self.clean, shifted)

    @Slot(int, str)
    def _image_failed(self, episode: int, message: str) -> None:
        if self.episode is not None and episode == self.episode.id:
            self._no_image(message)

    @Slot(int, str)
    def _session_failed(self, episode: int, message: str) -> None:
        """The image is fine but no session starts on it (aws on one image, a method the settings break): the
        images stay, the plots say why, and the next edit of the settings starts the episode again."""
        if self.episode is None or episode != self.episode.id:
            return
        self.episode = None
        self.shift_panel.show_views("Views: no session", None)
        self.step_label.setText("")
        self._update_actions()
        method, protocol = self.method_panel.name(), self.method_panel.protocol.currentText()
        if engine.default_steps(method, protocol) == 0:     # no recipe for this protocol (aws on one image)
            self.plots.clear(f"{method}: run it on batches (Batch tab)")     # fits a plot at 1280x720
            self.last_error = (f"{self.method_label(method)} has no {protocol} recipe: it learns from the pairs "
                               "of a batch; "
                               "choose Protocol online and run it in Run ▸ Batch Evaluation")
            self.statusBar().showMessage(self.last_error)
            self.error.emit(self.last_error)     # no dialog (Step's tooltip says it too); a scripted run stops
        else:
            self.plots.clear(message)
            self.report(message)

    @Slot(int, str, object)
    def _views_ready(self, episode: int, title: str, views) -> None:
        if self.episode is not None and episode == self.episode.id:
            self.shown_views = views
            self.shift_panel.show_views(title, views)

    # -- controls -------------------------------------------------------------------------------------
    def step(self) -> None:
        if self.running and self.stepping:
            self.queued += 1          # ten quick presses are ten steps
            self._update_actions()
            self.statusBar().showMessage(f"Running a step; {self.queued} more queued")
            return
        self._launch(1, stepping=True)

    def run(self) -> None:
        self._launch(self.remaining or self.run_steps.value())

    def _launch(self, n: int, stepping: bool = False) -> None:
        if self._restart.isActive() and not self.running:
            self._start_episode()     # an edit still in its debounce: the run must use it, not the old settings
        if self.running or not self._can_start():
            return
        self.running, self.requested, self.stepping = True, n, stepping
        self.progress.setRange(0, n)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self._run_start = self._record_count()
        self.controller.run(n)
        self.statusBar().showMessage(f"Running {n} step(s)…")
        self._update_actions()

    def pause(self) -> None:
        if self.running:
            self.controller.pause()

    def stop(self) -> None:
        self.remaining = self.queued = 0
        if self.running:
            self.controller.stop()
        self._update_actions()

    def reset(self) -> None:
        """Restore the checkpoint's weights (also an online session's carried state) and restart the image."""
        self.stop()
        self.controller.reset()
        self._start_episode()

    @Slot(int, str, int, object)
    def _run_finished(self, episode: int, status: str, done: int, records: tuple = ()) -> None:
        self.running = self.stepping = False
        self.progress.setVisible(False)
        self._pull(force=True)
        ep = self._episodes.get(episode)
        if ep is not None and done > 0:
            self._record_history(ep, status, records)
        if status == "paused":
            self.remaining = max(self.requested - done, 0)
            self.statusBar().showMessage(f"Paused after {done} step(s); Run resumes {self.remaining} more")
        elif status in ("done", "stopped"):
            self.remaining = 0
            total = len(records) - 1 if records else done
            # one Step press reads "after 1 step(s)" on its own; the image's count says where the episode stands
            more = f"; {total} on this image" if total > done else ""
            self.statusBar().showMessage(f"{status.capitalize()} after {done} step(s){more}", 5000)
        elif status != "failed":
            self.remaining = 0
            self.report(f"run ended: {status}")
        queued, self.queued = (self.queued, 0) if status == "done" else (0, 0)
        self._update_actions()
        self.run_done.emit(status)
        if queued:
            self._launch(queued, stepping=True)

    def _record_history(self, ep: Episode, status: str, records: tuple) -> None:
        """One History row for the episode's records as the worker finished them (never the buffer's: it may
        hold the next image already)."""
        if len(records) < 2:
            return
        if ep.row is None:
            ep.row = self.history.next_row()
        row = build_row(ep.row, records, self.model_info["classes"], image=ep.source, index=ep.index,
                        label=ep.label, corruption=ep.corruption, severity=ep.severity, config=ep.config,
                        status=status, checkpoint=ep.checkpoint, item=ep.item)
        self.history.upsert(row, records)
        self.history_view.scrollToBottom()
        if ep.label is not None:
            self.data_panel.model.mark(ep.index, row.correct_after == "yes")

    def _record_count(self) -> int:
        return len(self.controller.buffer.snapshot()[2])

    @Slot()
    def _pull(self, force: bool = False) -> None:
        """Timer tick: take new records from the worker and draw what is pending, within a time budget.

        Plots are painted here, one per tick, and timed: on a loaded machine a Python-heavy worker slows every
        paint, so the next tick waits at least three times as long as this one took and the event loop is
        always served (timers, input, Stop)."""
        now = time.perf_counter()
        if not force and now < self._next_draw:
            return
        version, ep_id, records = self.controller.buffer.snapshot()
        fresh = version != self._seen_version and self.episode is not None and ep_id == self.episode.id
        self._seen_version = version
        if fresh:
            self.compare.live()
            self.plots.set_records(records)
        if self.plots.pending():
            self.plots.draw_pending(budget=None if force else 0.0)   # one plot per tick while running
            self._next_draw = now + max(REDRAW_MS / 1000, 3 * (time.perf_counter() - now))
        if not fresh:
            return
        if records:
            self.step_label.setText(f"step {records[-1].step}")
        if self.running:
            self.progress.setValue(max(len(records) - self._run_start, 0))

    def _can_start(self) -> bool:
        """A run can start: a model and an image are ready, and the worker is not loading or evaluating."""
        return (self.model_info is not None and self.episode is not None and not self.loading
                and not self.controller.batch_running)

    @Slot()
    def _update_actions(self) -> None:
        # aws learns from the pairs of a batch: one image cannot step it, the Batch tab can
        pairs = engine.needs_batch(self.method_panel.name()) and not self.running
        ready = self._can_start() and not pairs
        self.step_action.setEnabled(ready and (not self.running or self.stepping))
        self.step_action.setText(f"Step (+{self.queued})" if self.queued else "Step")
        self.run_action.setEnabled(ready and not self.running)
        self.run_action.setText(f"Resume ({self.remaining})" if self.remaining else "Run")
        self.pause_action.setEnabled(self.running)
        self.stop_action.setEnabled(self.running or bool(self.remaining))
        self.reset_action.setEnabled(ready)
        self.export_action.setEnabled(True)
        why = ("waits for the batch evaluation (Cancel it in the Batch tab)" if self.controller.batch_running
               else "waits for the model to load" if self.loading
               else f"{self.method_label(self.method_panel.name())} learns from the pairs of a batch of images: run it "
                    "in Run ▸ Batch "
                    "Evaluation (online, B = paper's or 2 or more)" if pairs else "")
        for act, text in ((self.step_action, "One adaptation step (F10)"), (self.run_action, "Run N steps (F5)")):
            act.setToolTip(f"{text} — {why}" if why else text)
        if self.controller.batch_running:
            self.statusBar().showMessage("Batch evaluation running: Step and Run wait until it ends "
                                         "(Cancel in the Batch tab)")
        batch = getattr(self, "batch_panel", None)
        if batch is not None and not self.controller.batch_running:
            # one job at a time: Evaluate waits for a run or a model load instead of queueing silently
            batch.start_button.setEnabled(not self.running and not self.loading)
            batch.start_button.setToolTip("Stop the run first" if self.running else "")

    # -- batch ----------------------------------------------------------------------------------------
    def show_batch(self) -> None:
        from tttgui.gui.batch import BatchPanel

        if not hasattr(self, "batch_panel"):
            self.batch_panel = BatchPanel(self)
            self.tabs.addTab(self.batch_panel, "Batch")
        self.tabs.setCurrentWidget(self.batch_panel)

    # -- errors, help ---------------------------------------------------------------------------------
    @Slot(str)
    def report(self, message: str) -> None:
        """One line in the status bar and a non-blocking dialog; never a traceback."""
        self.last_error = message
        self.statusBar().showMessage(message)
        self.error.emit(message)
        if self.options.interactive:
            box = QMessageBox(QMessageBox.Icon.Warning, "tttgui", message, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    def _show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td>{a.text().replace('&', '')}</td><td>&nbsp;&nbsp;<b>"
                       f"{' or '.join(k.toString() for k in a.shortcuts())}</b></td></tr>"
                       for a in self.findChildren(QAction) if a.shortcuts())
        QMessageBox.information(self, "Keyboard shortcuts", f"<table>{rows}</table>")

    def _show_about(self) -> None:
        import PySide6
        import torch

        QMessageBox.about(self, "About tttgui", f"tttgui — test-time training explorer\n\ntorch {torch.__version__}"
                          f" (CUDA {torch.version.cuda or 'none'})\nPySide6 {PySide6.__version__}")

    # -- theme ----------------------------------------------------------------------------------------
    def apply_theme(self) -> None:
        hints = QApplication.styleHints()
        dark = hasattr(hints, "colorScheme") and hints.colorScheme() == Qt.ColorScheme.Dark
        self.plots.set_dark(dark)

    # -- close ----------------------------------------------------------------------------------------
    def closeEvent(self, event):
        s = self.settings
        s.set("geometry", self.saveGeometry().data())
        s.set("window_state", self.saveState().data())
        s.set("method", self.method_panel.values())
        name, severity = self.shift_panel.choice()
        s.set("corruption", name)
        s.set("severity", severity)
        s.set("run_steps", self.run_steps.value())
        s.set("device", self.model_panel.device_choice())
        s.sync()
        self.timer.stop()
        if hasattr(self, "batch_panel"):
            self.batch_panel.shutdown()
        if not self.controller.shutdown(10000):
            self.controller.thread.wait()  # a step cannot be interrupted; never destroy a running thread
        super().closeEvent(event)
