"""Model panel: which checkpoint is loaded (or why none is), recent files, the device."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout)


class ModelPanel(QGroupBox):
    open_requested = Signal()
    checkpoint_chosen = Signal(str)
    device_changed = Signal(str)

    def __init__(self, devices: list[str], parent=None):
        super().__init__("Model", parent)
        self.status = QLabel("No model loaded.")
        self.status.setWordWrap(True)
        self.open_button = QPushButton("Open checkpoint…")
        self.open_button.setToolTip("A checkpoint written by tttgui train: the ResNet-26 or any timm model "
                                    "trained with --arch timm:NAME")
        self.open_button.clicked.connect(self.open_requested)
        self.recent = QComboBox()
        self.recent.setPlaceholderText("Recent checkpoints")
        self.recent.activated.connect(self._recent_picked)
        self.device = QComboBox()
        self.device.addItems(devices)
        self.device.currentTextChanged.connect(self.device_changed)

        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.recent, 1)
        form = QFormLayout()
        form.addRow("Device", self.device)
        lay = QVBoxLayout(self)
        lay.addWidget(self.status)
        lay.addLayout(top)
        lay.addLayout(form)

    def set_recent(self, paths: list[str]) -> None:
        self.recent.blockSignals(True)
        self.recent.clear()
        for p in paths:
            self.recent.addItem(Path(p).name, p)
            self.recent.setItemData(self.recent.count() - 1, p)
        self.recent.setCurrentIndex(-1)
        self.recent.setEnabled(bool(paths))
        self.recent.blockSignals(False)

    @Slot(int)
    def _recent_picked(self, i: int) -> None:
        path = self.recent.itemData(i)
        if path:
            self.checkpoint_chosen.emit(str(path))

    def show_loading(self, path: str) -> None:
        self.status.setText(f"Loading {Path(path).name}…")

    def show_model(self, info: dict) -> None:
        meta = info.get("meta") or {}
        err = meta.get("clean_error")  # percent, as `tttgui train` records it
        extra = f", clean error {err:.2f} %" if isinstance(err, (int, float)) else ""
        self.status.setText(f"<b>{Path(info['path']).name}</b><br>{info.get('arch', '')}, "
                            f"{len(info['classes'])} classes{extra}<br>{info['device']}")
        self.status.setToolTip(info["path"])

    def show_missing(self, text: str) -> None:
        self.status.setText(f"<span style='color:#c0392b'>{text}</span><br>Use <i>Open checkpoint…</i> or drop "
                            "a .pt file on the window.")

    def device_choice(self) -> str:
        return self.device.currentText()
