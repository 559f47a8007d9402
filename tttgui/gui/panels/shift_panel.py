"""Shift panel: corruption and severity, the clean and corrupted image side by side, the augmented views."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGridLayout, QGroupBox, QLabel, QPushButton, QSpinBox,
                               QVBoxLayout)

from tttgui.gui import engine
from tttgui.gui.images import mosaic, to_pixmap

IMAGE_SIZE = 128


class ShiftPanel(QGroupBox):
    changed = Signal()
    views_requested = Signal()

    def __init__(self, parent=None):
        super().__init__("Shift", parent)
        self.corruption = QComboBox()
        self.corruption.addItems(engine.corruption_names())
        self.severity = QSpinBox()
        self.severity.setRange(1, 5)
        self.severity.setValue(5)
        self.about = QLabel("")
        self.about.setWordWrap(True)
        self.about.setStyleSheet("color: gray")
        self.clean = _image_label("clean")
        self.shifted = _image_label("corrupted")
        self.views = QLabel("Augmented views appear here once an image is set.")
        self.views.setMinimumHeight(80)
        self.views.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.views_button = QPushButton("New sample of views")
        self.views_button.clicked.connect(self.views_requested)

        form = QFormLayout()
        form.addRow("Corruption", self.corruption)
        form.addRow("Severity", self.severity)
        grid = QGridLayout()
        grid.addWidget(QLabel("Clean"), 0, 0, Qt.AlignmentFlag.AlignHCenter)
        grid.addWidget(QLabel("Corrupted"), 0, 1, Qt.AlignmentFlag.AlignHCenter)
        grid.addWidget(self.clean, 1, 0)
        grid.addWidget(self.shifted, 1, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.about)
        lay.addLayout(grid)
        lay.addWidget(QLabel("Views the method trains on:"))
        lay.addWidget(self.views)
        lay.addWidget(self.views_button)
        self.corruption.currentIndexChanged.connect(self._changed)
        self.severity.valueChanged.connect(self._changed)
        self._changed()

    def _changed(self, *_):
        name = self.corruption.currentText()
        self.severity.setEnabled(name != "none")
        self.about.setText(engine.describe_corruption(name, self.severity.value()))
        self.changed.emit()

    def choice(self) -> tuple[str, int]:
        return self.corruption.currentText(), self.severity.value()

    def set_choice(self, name: str, severity: int) -> bool:
        i = self.corruption.findText(name)
        if i >= 0:
            self.corruption.setCurrentIndex(i)
        self.severity.setValue(int(severity))
        return i >= 0

    def show_images(self, clean: np.ndarray | None, shifted: np.ndarray | None) -> None:
        for label, img in ((self.clean, clean), (self.shifted, shifted)):
            if img is None:
                label.clear()
                label.setText("—")
            else:
                label.setPixmap(to_pixmap(img, IMAGE_SIZE))

    def show_views(self, views: np.ndarray) -> None:
        if views is None or len(views) == 0:
            self.views.setText("This method trains on no augmented views.")
            return
        tile = mosaic(np.asarray(views[:16]), cols=8)
        self.views.setPixmap(to_pixmap(tile, 300))


def _image_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setFixedSize(IMAGE_SIZE, IMAGE_SIZE)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet("border: 1px solid gray")
    return label
