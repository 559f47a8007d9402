"""Shift panel: corruption and severity, the clean and corrupted image side by side, the views of the last step."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QGroupBox, QLabel, QSpinBox

from tttgui.gui import engine
from tttgui.gui.images import mosaic, to_pixmap

IMAGE_SIZE = 96
VIEWS_WIDTH = 240     # 8 views a row: fits the narrowest Settings dock


class ShiftPanel(QGroupBox):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__("Shift", parent)
        self.corruption = QComboBox()
        self.corruption.addItems(engine.corruption_names())
        self.corruption.setMaxVisibleItems(20)
        self.severity = QSpinBox()
        self.severity.setRange(1, 5)
        self.severity.setValue(5)
        self.severity.setPrefix("severity ")
        self.about = QLabel("")
        self.about.setWordWrap(True)
        self.about.setStyleSheet("color: gray")
        self.clean = _image_label("—")
        self.shifted = _image_label("—")
        self.views_title = QLabel("Views: none yet")
        self.views = QLabel("")
        self.views.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.views.setWordWrap(True)

        lay = QGridLayout(self)
        lay.addWidget(self.corruption, 0, 0)
        lay.addWidget(self.severity, 0, 1)
        lay.addWidget(self.about, 1, 0, 1, 2)
        lay.addWidget(QLabel("Clean"), 2, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(QLabel("Corrupted"), 2, 1, Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(self.clean, 3, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(self.shifted, 3, 1, Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(self.views_title, 4, 0, 1, 2)
        lay.addWidget(self.views, 5, 0, 1, 2)
        lay.setColumnStretch(0, 1)
        lay.setColumnStretch(1, 1)
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

    def show_images(self, clean: np.ndarray | None, shifted: np.ndarray | None, note: str = "—") -> None:
        for label, img in ((self.clean, clean), (self.shifted, shifted)):
            if img is None:
                label.clear()
                label.setText(note if label is self.shifted else "—")
            else:
                label.setPixmap(to_pixmap(img, IMAGE_SIZE))

    def show_views(self, title: str, views: np.ndarray | None) -> None:
        """`views` None or empty: the title says why there are none."""
        self.views_title.setText(title)
        if views is None or len(views) == 0:
            self.views.clear()
            return
        tile = mosaic(np.asarray(views[:16]), cols=8)
        self.views.setPixmap(to_pixmap(tile, VIEWS_WIDTH))


def _image_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setFixedSize(IMAGE_SIZE, IMAGE_SIZE)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setStyleSheet("border: 1px solid gray")
    return label
