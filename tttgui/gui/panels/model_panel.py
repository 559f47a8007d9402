"""Model panel: which checkpoint is loaded (or why none is), recent files, the device."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QComboBox, QGridLayout, QGroupBox, QLabel, QPushButton


class ModelPanel(QGroupBox):
    open_requested = Signal()
    checkpoint_chosen = Signal(str)
    device_changed = Signal(str)

    def __init__(self, devices: list[str], parent=None):
        super().__init__("Model", parent)
        self.status = QLabel("No model loaded.")
        self.status.setWordWrap(True)
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Open a checkpoint written by tttgui train: the ResNet-26 or any timm model "
                                    "trained with --arch timm:NAME (Ctrl+Shift+M)")
        self.open_button.clicked.connect(self.open_requested)
        self.recent = QComboBox()     # the shipped models, then the recently opened ones
        self.recent.setPlaceholderText("Models")
        self.recent.setToolTip("The models shipped with tttgui, then those opened recently")
        self.recent.setMinimumContentsLength(6)
        self.recent.activated.connect(self._recent_picked)
        self.device = QComboBox()
        self.device.addItems(devices)
        self.device.setToolTip("Device the model runs on")
        self.device.currentTextChanged.connect(self.device_changed)

        lay = QGridLayout(self)
        lay.addWidget(self.status, 0, 0, 1, 3)
        lay.addWidget(self.open_button, 1, 0)
        lay.addWidget(self.recent, 1, 1)
        lay.addWidget(self.device, 1, 2)
        lay.setColumnStretch(1, 1)
        self.shown: dict | None = None      # the model the panel describes (a failed load goes back to it)

    def set_recent(self, paths: list[str], shipped: list[str] = ()) -> None:
        self.recent.blockSignals(True)
        self.recent.clear()
        for p in shipped:
            self.recent.addItem(f"{Path(p).name} (shipped)", str(p))
            self.recent.setItemData(self.recent.count() - 1, str(p), Qt.ToolTipRole)
        known = {str(Path(p).resolve()) for p in shipped}
        others = [p for p in paths if str(Path(p).resolve()) not in known]
        if shipped and others:
            self.recent.insertSeparator(self.recent.count())
        for p in others:
            self.recent.addItem(Path(p).name, p)
            self.recent.setItemData(self.recent.count() - 1, p, Qt.ToolTipRole)
        self.recent.setCurrentIndex(-1)
        self.recent.setEnabled(self.recent.count() > 0)
        self.recent.blockSignals(False)

    @Slot(int)
    def _recent_picked(self, i: int) -> None:
        path = self.recent.itemData(i)
        if path:
            self.checkpoint_chosen.emit(str(path))

    def show_loading(self, path: str) -> None:
        self.status.setText(f"Loading {Path(path).name}…")

    def show_model(self, info: dict) -> None:
        self.shown = info
        meta = info.get("meta") or {}
        err = meta.get("clean_error")  # percent, as `tttgui train` records it
        extra = f", clean error {err:.2f} %" if isinstance(err, (int, float)) else ""
        self.status.setText(f"<b>{Path(info['path']).name}</b><br>{info.get('arch', '')}, "
                            f"{len(info['classes'])} classes{extra}")
        self.status.setToolTip(f"{info['path']}\n{info['device']}")

    def show_missing(self, text: str) -> None:
        self.shown = None
        self.status.setText(f"<span style='color:#c0392b'>{text}</span><br>Use <i>Open…</i> or drop "
                            "a .pt file on the window.")

    def restore(self, failure: str) -> None:
        """A load failed: describe the model still in use again (or the failure when there is none)."""
        if self.shown is not None:
            self.show_model(self.shown)
        else:
            self.show_missing(failure)

    def device_choice(self) -> str:
        return self.device.currentText()
