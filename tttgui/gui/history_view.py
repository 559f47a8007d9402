"""The history table: one row per adapted image (HistoryRow), newest last."""
from __future__ import annotations

from dataclasses import astuple

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor

from tttgui.gui.history import COLUMNS, HistoryRow, field_names
from tttgui.methods import DIVERGED

_POS = {name: i for i, name in enumerate(field_names())}


class HistoryTableModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[HistoryRow] = []

    def upsert(self, row: HistoryRow) -> None:
        """Replace the row with the same number, or append it."""
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
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
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
            return str(value)
        if role == Qt.ItemDataRole.BackgroundRole and col in ("correct_before", "correct_after") and value:
            return QColor(60, 170, 80, 80) if value == "yes" else QColor(210, 60, 50, 80)
        if role == Qt.ItemDataRole.BackgroundRole and col == "status" and value == DIVERGED:
            return QColor(210, 60, 50, 80)
        return None
