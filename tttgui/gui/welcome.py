"""The page shown before any data is open: never an empty window."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class WelcomePage(QWidget):
    open_folder = Signal()
    open_image = Signal()
    download = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        title = QLabel("<h2>Test-time training explorer</h2>"
                       "<p>Open a data set (a folder with one sub-folder per class, e.g. CIFAR-10 test) or a "
                       "single image, pick a corruption and a method, then Step or Run to watch the model adapt."
                       "</p><p>You can also drop a folder, an image or a checkpoint on this window.</p>")
        title.setWordWrap(True)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.folder_button = QPushButton("Open Folder…")
        self.image_button = QPushButton("Open Image…")
        self.download_button = QPushButton("Download CIFAR-10 test set")
        self.folder_button.clicked.connect(self.open_folder)
        self.image_button.clicked.connect(self.open_image)
        self.download_button.clicked.connect(self.download)
        self.busy = QLabel("")
        self.busy.setAlignment(Qt.AlignmentFlag.AlignCenter)
        row = QHBoxLayout()
        row.addStretch(1)
        for b in (self.folder_button, self.image_button, self.download_button):
            b.setMinimumHeight(40)
            row.addWidget(b)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addStretch(1)
        lay.addWidget(title)
        lay.addLayout(row)
        lay.addWidget(self.busy)
        lay.addStretch(2)

    def set_busy(self, text: str) -> None:
        self.busy.setText(text)
        for b in (self.folder_button, self.image_button, self.download_button):
            b.setEnabled(not text)
