"""A button whose menu ticks several choices (the batch grid's corruptions, severities and methods): compact on a
small screen, and its text says what is ticked."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QToolButton, QMenu


class CheckList(QToolButton):
    changed = Signal()

    def __init__(self, name: str, parent=None):
        super().__init__(parent)
        self.name = name
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setMenu(QMenu(self))
        self._refresh()

    def set_items(self, items, checked=()) -> None:
        self.menu().clear()
        for item in items:
            action = self.menu().addAction(str(item))
            action.setCheckable(True)
            action.setChecked(str(item) in {str(c) for c in checked})
            action.toggled.connect(self._refresh)
        self._refresh()

    def items(self) -> list[str]:
        return [a.text() for a in self.menu().actions()]

    def checked(self) -> list[str]:
        return [a.text() for a in self.menu().actions() if a.isChecked()]

    def set_checked(self, names) -> None:
        names = {str(n) for n in names}
        for a in self.menu().actions():
            a.blockSignals(True)
            a.setChecked(a.text() in names and a.isEnabled())     # a greyed-out item stays unticked
            a.blockSignals(False)
        self._refresh()

    def disable(self, reasons: dict) -> None:
        """Grey out and untick the items named (their tooltip says why); every other item is enabled."""
        self.menu().setToolTipsVisible(True)
        for a in self.menu().actions():
            why = reasons.get(a.text())
            a.setEnabled(why is None)
            a.setToolTip(why or a.text())
            if why and a.isChecked():
                a.blockSignals(True)
                a.setChecked(False)
                a.blockSignals(False)
        self._refresh()

    def _refresh(self, *_) -> None:
        ticked = self.checked()
        shown = ", ".join(ticked) if len(ticked) <= 2 else f"{len(ticked)} {self.name}"
        self.setText(shown or f"no {self.name}")
        self.setToolTip(f"{self.name.capitalize()}: {', '.join(ticked) or 'none ticked'}")
        self.changed.emit()
