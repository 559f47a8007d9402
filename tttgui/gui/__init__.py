"""The desktop explorer (PySide6 + pyqtgraph). Everything Qt lives under this package; the core never imports it."""
