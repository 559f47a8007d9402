"""The history table: one row per adapted image (HistoryRow), newest last, with each row's step records (so a
click shows that episode's plots again); the pane around it filters, deletes and summarises rows."""
from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal, Slot
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QLabel, QLineEdit, QMenu, QSizePolicy, QTableView,
                               QVBoxLayout, QWidget)

from tttgui.gui.history import COLUMN_HELP, COLUMNS, HistoryRow, accuracy_text, field_names, image_text
from tttgui.methods import DIVERGED

_POS = {name: i for i, name in enumerate(field_names())}
FITTED = tuple(COLUMNS.index(c) for c in ("checkpoint", "image"))   # columns widened to their names
FIT_MAX = 260       # px: a long name is elided in the middle beyond this (the full one on hover)


class HistoryTableModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[HistoryRow] = []
        self.records: dict[int, tuple] = {}   # row number -> the episode's step records (step 0 first)
        self.names: dict[str, str] = {}        # method: registry name (as exported) -> the name the user reads
        self._last = 0

    def next_row(self) -> int:
        """A number no row has had (deleting rows must not make a new episode overwrite an old one)."""
        return max([self._last] + [r.row for r in self.rows]) + 1

    def remove(self, numbers) -> None:
        for i in sorted((i for i, r in enumerate(self.rows) if r.row in set(numbers)), reverse=True):
            self.beginRemoveRows(QModelIndex(), i, i)
            self.records.pop(self.rows[i].row, None)
            del self.rows[i]
            self.endRemoveRows()

    def upsert(self, row: HistoryRow, records=None) -> None:
        """Replace the row with the same number, or append it."""
        self._last = max(self._last, row.row)
        if records is not None:
            self.records[row.row] = tuple(records)
        for i, old in enumerate(self.rows):
            if old.row == row.row:
                self.rows[i] = row
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))
                return
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
        self.rows.append(row)
        self.endInsertRows()

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return COLUMN_HELP[COLUMNS[section]]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = COLUMNS[index.column()]
        value = astuple(row)[_POS[col]]
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return ""
            if isinstance(value, float):
                return f"{value:.3f}" if col != "seconds" else f"{value:.2f}"
            if col == "image":
                return image_text(row)
            return Path(value).name if col == "checkpoint" and value else str(value)
        if role == Qt.ItemDataRole.ToolTipRole and col == "method":   # the cell keeps the exported name
            return self.names.get(value, value)
        if role == Qt.ItemDataRole.ToolTipRole and col == "checkpoint":
            return value
        if role == Qt.ItemDataRole.ToolTipRole and col == "image":   # the export's value, and the file
            return f"{row.item}\n(data set {value}, index {row.index})" if row.item and row.item != value else value
        if role == Qt.ItemDataRole.BackgroundRole and col in ("correct_before", "correct_after") and value:
            return QColor(60, 170, 80, 80) if value == "yes" else QColor(210, 60, 50, 80)
        if role == Qt.ItemDataRole.BackgroundRole and col == "status" and value == DIVERGED:
            return QColor(210, 60, 50, 80)
        return None


class HistoryPane(QWidget):
    """Filter line, the table (click: show that row's plots; Delete: remove rows; right click: pin) and a line
    of accuracy before → after per method over the rows shown."""
    row_chosen = Signal(int)        # row number
    pin_requested = Signal(int)

    def __init__(self, model: HistoryTableModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter rows (method, corruption, class, status…)")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.summary = QLabel("")
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)     # one line a row: a long cell is elided, its full text on hover
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._menu)
        self.table.clicked.connect(lambda index: self.row_chosen.emit(self.number(index)))
        delete = QShortcut(QKeySequence.StandardKey.Delete, self.table)
        delete.activated.connect(self.delete_selected)
        for signal in (model.rowsInserted, model.rowsRemoved, model.dataChanged, self.proxy.layoutChanged,
                       self.filter.textChanged):
            signal.connect(self._summarise)
        model.rowsInserted.connect(self._fit_columns)
        model.dataChanged.connect(self._fit_columns)
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.summary, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        self._summarise()

    def number(self, index) -> int:
        return self.model.rows[self.proxy.mapToSource(index).row()].row

    def shown(self) -> list[HistoryRow]:
        return [self.model.rows[self.proxy.mapToSource(self.proxy.index(i, 0)).row()]
                for i in range(self.proxy.rowCount())]

    def selected(self) -> list[int]:
        return sorted({self.number(i) for i in self.table.selectionModel().selectedRows()})

    @Slot()
    def delete_selected(self) -> None:
        self.model.remove(self.selected())

    @Slot()
    def _summarise(self, *_) -> None:
        rows = self.shown()
        self.summary.setText(accuracy_text(rows) if rows else "")

    @Slot()
    def _fit_columns(self, *_) -> None:
        """Widen the file-name columns to their longest name up to FIT_MAX (never narrower: a width the user
        dragged stays)."""
        header = self.table.horizontalHeader()
        for c in FITTED:
            want = min(max(self.table.sizeHintForColumn(c), header.sectionSizeHint(c)) + 4, FIT_MAX)
            if want > header.sectionSize(c):
                header.resizeSection(c, want)

    def _menu(self, pos) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        number = self.number(index)
        menu = QMenu(self)
        menu.addAction("Show this episode's plots", lambda: self.row_chosen.emit(number))
        menu.addAction("Pin for comparison", lambda: self.pin_requested.emit(number))
        menu.addAction("Delete selected rows", self.delete_selected)
        menu.exec(self.table.viewport().mapToGlobal(pos))
