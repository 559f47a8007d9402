"""A button whose menu ticks several choices (the batch grid's corruptions, severities and methods): compact on a
small screen, and its text says what is ticked. An item has a key (what the code asks for: a registry name) and a
label (what the user reads: 'Tent (GN affine)' for tent on a GroupNorm model)."""
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

    LONGEST = 36    # characters of labels the button shows before it counts instead (keeps the tab narrow)

    def set_items(self, items, checked=(), labels=None) -> None:
        self.menu().clear()
        for item in items:
            action = self.menu().addAction((labels or {}).get(str(item), str(item)))
            action.setData(str(item))
            action.setCheckable(True)
            action.setChecked(str(item) in {str(c) for c in checked})
            action.toggled.connect(self._refresh)
        self._refresh()

    def items(self) -> list[str]:
        return [a.data() for a in self.menu().actions()]

    def labels(self) -> dict[str, str]:
        return {a.data(): a.text() for a in self.menu().actions()}

    def checked(self) -> list[str]:
        return [a.data() for a in self.menu().actions() if a.isChecked()]

    def set_checked(self, names) -> None:
        names = {str(n) for n in names}
        for a in self.menu().actions():
            a.blockSignals(True)
            a.setChecked(a.data() in names and a.isEnabled())     # a greyed-out item stays unticked
            a.blockSignals(False)
        self._refresh()

    def disable(self, reasons: dict) -> None:
        """Grey out and untick the items named (their tooltip says why); every other item is enabled."""
        self.menu().setToolTipsVisible(True)
        for a in self.menu().actions():
            why = reasons.get(a.data())
            a.setEnabled(why is None)
            a.setToolTip(why or a.text())
            if why and a.isChecked():
                a.blockSignals(True)
                a.setChecked(False)
                a.blockSignals(False)
        self._refresh()

    def _refresh(self, *_) -> None:
        ticked = [a.text() for a in self.menu().actions() if a.isChecked()]
        shown = ", ".join(ticked)
        if len(ticked) > 2 or len(shown) > self.LONGEST:
            shown = shown[:self.LONGEST - 1] + "…" if len(ticked) == 1 else f"{len(ticked)} {self.name}"
        self.setText(shown or f"no {self.name}")
        self.setToolTip(f"{self.name.capitalize()}: {'; '.join(ticked) or 'none ticked'}")
        self.changed.emit()
