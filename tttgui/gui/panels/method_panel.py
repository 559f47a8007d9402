"""Method panel: method and hyperparameters; blank/zero fields mean the paper's default."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import QComboBox, QGridLayout, QGroupBox, QLabel, QLineEdit, QSpinBox

from tttgui.gui import engine


class MethodPanel(QGroupBox):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__("Method", parent)
        self.method = QComboBox()
        for name in engine.method_names():     # text: what the user reads; data: the registry name
            self.method.addItem(name, name)
        self.steps = _spin(0, 1000, "default")
        self.lr = QLineEdit()
        self.lr.setPlaceholderText("default")
        val = QDoubleValidator(0.0, 10.0, 8)
        val.setNotation(QDoubleValidator.Notation.ScientificNotation)
        self.lr.setValidator(val)
        self.optimizer = QComboBox()
        self.optimizer.addItems(engine.OPTIMIZER_CHOICES)
        self.views = _spin(0, 512, "default")
        self.params = QComboBox()
        self.params.addItems(engine.PARAM_CHOICES)
        self.protocol = QComboBox()
        self.protocol.addItems(engine.PROTOCOLS)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2 ** 31 - 1)
        # Two label/field pairs a row: the whole panel shows without scrolling on a 720 px screen.
        grid = QGridLayout(self)
        # The method on a row of its own: names such as "Tent (GN affine)" do not fit half a row.
        label = QLabel("Method")
        label.setBuddy(self.method)
        grid.addWidget(label, 0, 0)
        grid.addWidget(self.method, 0, 1, 1, 3)
        pairs = (("Protocol", self.protocol), ("Steps", self.steps), ("LR", self.lr), ("Optimizer", self.optimizer),
                 ("Views", self.views), ("Params", self.params), ("Seed", self.seed))
        for i, (text, w) in enumerate(pairs):
            label = QLabel(text)
            label.setBuddy(w)
            grid.addWidget(label, 1 + i // 2, 2 * (i % 2))
            grid.addWidget(w, 1 + i // 2, 2 * (i % 2) + 1)
            w.setMinimumWidth(60)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.lr.setToolTip("Learning rate (empty: the paper's)")
        self.params.setToolTip("Parameters the method adapts")
        for w in (self.method, self.optimizer, self.params, self.protocol):
            w.currentIndexChanged.connect(self.changed)
        self.method.currentIndexChanged.connect(lambda _: self._describe(self.name()))
        self._describe(self.name())
        for w in (self.steps, self.views, self.seed):
            w.valueChanged.connect(self.changed)
        self.lr.editingFinished.connect(self.changed)

    def config(self):
        lr = self.lr.text().strip().replace(",", ".")
        opt, params = self.optimizer.currentText(), self.params.currentText()
        return engine.make_config(
            self.name(), steps=self.steps.value() or None, lr=float(lr) if lr else None,
            optimizer=None if opt == "default" else opt, views=self.views.value() or None,
            params=None if params == "default" else params, protocol=self.protocol.currentText(),
            seed=self.seed.value())

    def default_steps(self) -> int:
        """Steps of one Run: the panel's number, else the method's paper default for the protocol."""
        if self.steps.value():
            return self.steps.value()
        return engine.default_steps(self.name(), self.protocol.currentText())

    def values(self) -> dict:
        return {"method": self.name(), "steps": self.steps.value(), "lr": self.lr.text(),
                "optimizer": self.optimizer.currentText(), "views": self.views.value(),
                "params": self.params.currentText(), "protocol": self.protocol.currentText(),
                "seed": self.seed.value()}

    def load(self, d: dict) -> None:
        for key, box in (("method", self.method), ("optimizer", self.optimizer), ("params", self.params),
                         ("protocol", self.protocol)):
            i = box.findData(str(d.get(key, ""))) if box is self.method else box.findText(str(d.get(key, "")))
            if i >= 0:
                box.setCurrentIndex(i)
        for key, spin in (("steps", self.steps), ("views", self.views), ("seed", self.seed)):
            try:
                spin.setValue(int(d.get(key, spin.value())))
            except (TypeError, ValueError):
                pass
        self.lr.setText(str(d.get("lr", "") or ""))

    def name(self) -> str:
        """The registry name of the chosen method (the item's text may be its display name)."""
        return self.method.currentData() or self.method.currentText()

    def names(self) -> list[str]:
        return [self.method.itemData(i) for i in range(self.method.count())]

    def show_names(self, shown: dict, unusable: dict | None = None) -> str | None:
        """Name each method for what it is on the loaded model, e.g. "Tent (GN affine)" on a GroupNorm network,
        and grey out those the model cannot run (the tooltip says why). When the chosen one is among them, the
        first usable one is chosen instead; returns the name that was replaced."""
        unusable = unusable or {}
        items = self.method.model()
        for i, name in enumerate(self.names()):
            self.method.setItemText(i, shown.get(name, name))
            items.item(i).setEnabled(name not in unusable)
            self.method.setItemData(i, unusable.get(name, engine.describe_method(name)), Qt.ItemDataRole.ToolTipRole)
        old = self.name()
        if old not in unusable:
            return None
        usable = [n for n in self.names() if n not in unusable]
        self.set_method(next((n for n in usable if n != "source"), usable[0] if usable else old))
        return old

    def set_method(self, name: str) -> bool:
        i = self.method.findData(name)
        if i >= 0:
            self.method.setCurrentIndex(i)
        return i >= 0

    def _describe(self, name: str) -> None:
        self.method.setToolTip(engine.describe_method(name))


def _spin(lo: int, hi: int, special: str) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setSpecialValueText(special)
    return s
