"""The window's files: opening data (folder, image, drop) and exporting history, window and plots. A mixin of
MainWindow (tttgui.gui.main_window), kept apart so the window's file stays about layout, episodes and controls."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from tttgui.atomic import write_bytes
from tttgui.gui.errors import one_line
from tttgui.gui.history import export, row_settings

CHECKPOINT_SUFFIXES = {".pt", ".pth"}


class WindowFiles:
    # -- data -----------------------------------------------------------------------------------------
    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open data folder", self.settings.get("last_dir"))
        if path:
            self.open_data(path)

    def open_image_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self.settings.get("last_dir"),
                                              "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp)")
        if path:
            self.open_data(path)

    def open_data(self, path: str, quiet: bool = False) -> bool:
        from tttgui.gui.datasets import open_any

        try:
            dataset, labels = open_any(path, self.model_info["classes"] if self.model_info else None)
        except Exception as exc:  # noqa: BLE001 - any bad input is one line, the app stays usable
            msg = one_line(exc, f"cannot open {path}")
            if quiet:
                self.statusBar().showMessage(msg)
            else:
                self.report(msg)
            return False
        self.dataset, self.labels = dataset, labels
        self.data_panel.set_dataset(dataset, labels)
        self.settings.set("last_data", str(path))
        self.settings.set("last_dir", str(Path(path).parent))
        self.center.setCurrentWidget(self.plots)
        self.statusBar().showMessage(f"Opened {path}: {len(dataset)} images", 5000)
        self.data_panel.select_index(0)
        return True

    # -- export ---------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export statistics", str(Path(self.settings.get("last_dir"))
                                                                             / "tttgui-history.csv"),
                                              "CSV (*.csv)")
        if path:
            self.export_statistics(path)

    def export_statistics(self, path: str) -> bool:
        try:
            csv_path, json_path = export(
                path, self.history.rows, classes=self.model_info["classes"] if self.model_info else [],
                checkpoint=self.model_info["path"] if self.model_info else "",
                device=self.device_label.text(), config=row_settings(self.history.rows))
        except Exception as exc:  # noqa: BLE001
            self.report(one_line(exc, f"export to {path} failed"))
            return False
        self.statusBar().showMessage(f"Exported {len(self.history.rows)} row(s) to {csv_path} (+ {json_path.name})")
        return True

    def export_image_dialog(self, plots: bool) -> None:
        what = "plots" if plots else "window"
        path, chosen = QFileDialog.getSaveFileName(self, f"Export {what}", str(Path(self.settings.get("last_dir"))
                                                   / f"tttgui-{what}.png"), "PNG (*.png);;SVG (*.svg)")
        if path:
            if not Path(path).suffix:
                path += ".svg" if chosen.startswith("SVG") else ".png"
            self.save_png(path, plots=plots)

    def save_png(self, path: str, plots: bool = False) -> bool:
        """The whole window (or the plot area) as PNG, or as SVG when the path ends in .svg; written atomically."""
        from tttgui.gui.exports import encode

        widget = self.plots.canvas if plots else self
        try:
            write_bytes(path, encode(widget, "svg" if path.lower().endswith(".svg") else "png"))
        except Exception as exc:  # noqa: BLE001
            self.report(one_line(exc, f"cannot save {path}"))
            return False
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    # -- drag and drop --------------------------------------------------------------------------------
    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        for url in event.mimeData().urls():
            self.open_path(url.toLocalFile())
        event.acceptProposedAction()

    def open_path(self, path: str) -> None:
        p = Path(path)
        if p.suffix.lower() in CHECKPOINT_SUFFIXES:
            self.load_checkpoint(str(p))
        else:
            self.open_data(str(p))
