"""Data panel: a lazily filled thumbnail gallery of the open data set, class filter, jump to index."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QGroupBox, QHBoxLayout, QLabel, QListView, QPushButton, QSpinBox,
                               QVBoxLayout)

from tttgui.gui.images import to_pixmap

THUMB = 48


class GalleryModel(QAbstractListModel):
    """Rows are data-set indices (after the class filter); thumbnails are decoded when first shown."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.dataset = None
        self.labels = None
        self.rows: list[int] = []
        self.marks: dict[int, bool] = {}     # data-set index -> correct after adaptation
        self._thumbs: dict[int, object] = {}

    def set_dataset(self, dataset, labels) -> None:
        self.beginResetModel()
        self.dataset, self.labels = dataset, labels
        self.rows = list(range(len(dataset))) if dataset is not None else []
        self.marks, self._thumbs = {}, {}
        self.endResetModel()

    def filter(self, label: int | None) -> None:
        self.beginResetModel()
        n = len(self.dataset) if self.dataset is not None else 0
        self.rows = [i for i in range(n) if label is None or int(self.labels[i]) == label]
        self.endResetModel()

    def mark(self, index: int, correct: bool) -> None:
        self.marks[index] = correct
        if index in self.rows:
            i = self.createIndex(self.rows.index(index), 0)
            self.dataChanged.emit(i, i)

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.dataset is None:
            return None
        i = self.rows[index.row()]
        label = int(self.labels[i]) if self.labels is not None else -1
        name = self.dataset.classes[label] if 0 <= label < len(self.dataset.classes) else "?"
        mark = {True: " ✓", False: " ✗"}.get(self.marks.get(i), "")
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{i}{mark}"
        if role == Qt.ItemDataRole.ToolTipRole:
            state = {True: "correct after adaptation", False: "wrong after adaptation"}.get(self.marks.get(i),
                                                                                            "not run yet")
            return f"#{i}: {name} ({state})"
        if role == Qt.ItemDataRole.DecorationRole:
            if i not in self._thumbs:
                try:
                    self._thumbs[i] = to_pixmap(self.dataset[i][0], THUMB)
                except Exception:  # a broken file shows as a blank tile; opening it reports the error
                    self._thumbs[i] = None
            return self._thumbs[i]
        if role == Qt.ItemDataRole.BackgroundRole and i in self.marks:
            return QColor(60, 170, 80, 70) if self.marks[i] else QColor(210, 60, 50, 70)
        if role == Qt.ItemDataRole.UserRole:
            return i
        return None


class DataPanel(QGroupBox):
    image_selected = Signal(int)
    open_folder = Signal()
    open_image = Signal()

    def __init__(self, parent=None):
        super().__init__("", parent)   # the dock's title already says "Data"
        self.info = QLabel("No data set open.")
        self.info.setWordWrap(True)
        self.folder_button = QPushButton("Folder…")
        self.folder_button.setToolTip("Open a data set folder (Ctrl+Shift+O)")
        self.folder_button.clicked.connect(self.open_folder)
        self.image_button = QPushButton("Image…")
        self.image_button.setToolTip("Open one image (Ctrl+O)")
        self.image_button.clicked.connect(self.open_image)
        self.class_filter = QComboBox()
        self.class_filter.addItem("all classes")
        self.class_filter.setMinimumContentsLength(6)
        self.class_filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_filter.currentIndexChanged.connect(self._filter)
        self.jump = QSpinBox()
        self.jump.setPrefix("#")
        self.jump.setToolTip("Go to image number")
        self.jump.setKeyboardTracking(False)
        self.jump.valueChanged.connect(self.select_index)
        self.model = GalleryModel(self)
        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setIconSize(QSize(THUMB, THUMB))
        self.view.setGridSize(QSize(THUMB + 16, THUMB + 22))
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setUniformItemSizes(True)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setModel(self.model)
        self.view.selectionModel().currentChanged.connect(self._current)

        buttons = QHBoxLayout()
        buttons.addWidget(self.folder_button)
        buttons.addWidget(self.image_button)
        tools = QHBoxLayout()
        tools.addWidget(self.class_filter, 1)
        tools.addWidget(self.jump)
        lay = QVBoxLayout(self)
        lay.addWidget(self.info)
        lay.addLayout(buttons)
        lay.addLayout(tools)
        lay.addWidget(self.view, 1)

    def set_dataset(self, dataset, labels) -> None:
        self.model.set_dataset(dataset, labels)
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItem("all classes")
        self.class_filter.addItems(list(dataset.classes))
        self.class_filter.blockSignals(False)
        self.jump.blockSignals(True)
        self.jump.setRange(0, max(len(dataset) - 1, 0))
        self.jump.blockSignals(False)
        name = Path(str(dataset.source)).name or str(dataset.source)   # a long path must not widen the dock
        self.info.setText(f"<b>{name}</b><br>{len(dataset)} images, {len(dataset.classes)} classes")
        self.info.setToolTip(str(dataset.source))

    @Slot(int)
    def _filter(self, i: int) -> None:
        self.model.filter(None if i <= 0 else i - 1)

    @Slot(int)
    def select_index(self, index: int) -> None:
        """Select data-set index `index` in the gallery (clearing a class filter that hides it)."""
        if self.model.dataset is None:
            return
        if index not in self.model.rows:
            self.class_filter.setCurrentIndex(0)
        if index in self.model.rows:
            mi = self.model.index(self.model.rows.index(index), 0)
            self.view.setCurrentIndex(mi)
            self.view.scrollTo(mi)

    @Slot(QModelIndex, QModelIndex)
    def _current(self, current, _previous) -> None:
        if current.isValid():
            i = self.model.rows[current.row()]
            self.jump.blockSignals(True)
            self.jump.setValue(i)
            self.jump.blockSignals(False)
            self.image_selected.emit(i)
