"""A widget as PNG (a screen grab) or SVG (the plots drawn as vectors), as bytes for an atomic write."""
from __future__ import annotations

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPoint, QRect
from PySide6.QtGui import QPainter
from PySide6.QtSvg import QSvgGenerator


def encode(widget, fmt: str) -> bytes:
    """fmt "png" or "svg"; raises OSError when Qt cannot encode."""
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if fmt == "svg":
        gen = QSvgGenerator()
        gen.setOutputDevice(buf)
        gen.setSize(widget.size())
        gen.setViewBox(QRect(0, 0, widget.width(), widget.height()))
        gen.setTitle("tttgui plots")
        painter = QPainter()
        if not painter.begin(gen):
            raise OSError("could not start the SVG")
        try:
            widget.render(painter, QPoint(0, 0))   # PySide6 needs the offset for the painter overload
        finally:
            painter.end()     # a painter left open crashes when the generator goes
        del painter, gen      # the generator writes to buf when destroyed: it must go before buf does
    elif not widget.grab().save(buf, "PNG"):
        raise OSError("could not encode the PNG")
    buf.close()
    if not data.size():
        raise OSError(f"the {fmt.upper()} is empty")
    return bytes(data.data())


__all__ = ["encode"]
