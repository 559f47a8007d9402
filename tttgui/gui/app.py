"""GUI entry point: `tttgui [options]` opens the window; with --screenshot it runs a scripted session and exits."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tttgui.errors import UserError


@dataclass(frozen=True)
class AppOptions:
    checkpoint: str | None
    data: str | None
    device: str | None
    settings: str | None
    threads: int
    image: int
    corruption: str | None
    severity: int | None
    method: str | None
    steps: int | None
    screenshot: str | None
    export: str | None
    quit_after: int | None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tttgui", description="Test-time training explorer (the desktop app). "
                                "Subcommands train, corrupt and eval run headless; see tttgui --help.")
    p.add_argument("--checkpoint", help="model checkpoint (.pt); default: the shipped model")
    p.add_argument("--data", help="data set folder or image file; default: the last one opened")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the last choice, else auto)")
    p.add_argument("--settings", help="settings file (ini) to use instead of the user's")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch (default: cores - 1, so the window keeps a core)")
    p.add_argument("--image", type=int, default=0, help="index of the image to select")
    p.add_argument("--corruption", help="corruption name, or none")
    p.add_argument("--severity", type=int, choices=range(1, 6), metavar="1-5")
    p.add_argument("--method", help="adaptation method")
    p.add_argument("--steps", type=int, help="steps to run (scripted run) and the method's steps")
    p.add_argument("--screenshot", help="scripted run: run the steps, save the window as PNG, exit (default layout; the "
                   "user's settings are neither read nor written unless --settings names a file)")
    p.add_argument("--export", help="scripted run: also export the history CSV (+ JSON sidecar)")
    p.add_argument("--quit-after", type=int, metavar="MS", help="quit after MS milliseconds (smoke tests)")
    return p


def parse(argv: list[str]) -> AppOptions:
    a = build_parser().parse_args(argv)
    if a.export and not a.screenshot:
        build_parser().error("--export needs --screenshot (the scripted run)")
    if a.screenshot and not a.data:
        build_parser().error("--screenshot needs --data")
    return AppOptions(checkpoint=a.checkpoint, data=a.data, device=a.device, settings=a.settings,
                      threads=a.threads, image=a.image, corruption=a.corruption, severity=a.severity,
                      method=a.method, steps=a.steps, screenshot=a.screenshot, export=a.export,
                      quit_after=a.quit_after)


def run_app(argv: list[str]) -> int:
    opts = parse(argv)
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")  # pyqtgraph would otherwise try PyQt6 first
    configure_threads(opts.threads)
    from PySide6.QtWidgets import QApplication

    import pyqtgraph as pg

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("tttgui")
    app.setOrganizationName("tttgui")
    app.setStyle("Fusion")
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    window, script = build_window(opts)
    try:
        # the imports the worker needs (seconds of torch) before the window shows: a shown window never freezes
        from tttgui.gui import engine
        engine.preload()
        window.show()
        window.start()
    except Exception as exc:    # close first: a window whose worker thread still runs aborts the process
        window.close()
        if isinstance(exc, UserError):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"the window could not start ({type(exc).__name__}: {first}); expected a working "
                        "installation: reinstall with pip install -e .") from None
    if opts.quit_after is not None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(opts.quit_after, window.close)
    code = app.exec()
    if script is not None and script.phase not in ("done", "failed"):
        print(f"tttgui: error: --quit-after {opts.quit_after} ms ended the scripted run before it finished "
              f"(it was at: {script.phase})", file=sys.stderr)
    return script.exit_code if script is not None else int(code)


def configure_threads(threads: int = 0) -> None:
    """Leave the GUI a core (torch defaults to all of them) and hand the GIL over every millisecond: with the
    default 5 ms switch interval a Python-heavy worker step delays each Qt call the GUI thread makes."""
    import torch

    torch.set_num_threads(threads or max(1, (os.cpu_count() or 2) - 1))
    sys.setswitchinterval(0.001)


def build_window(opts: AppOptions, session_factory=None):
    """The main window for these options, and the scripted-run driver when --screenshot is given."""
    from PySide6.QtWidgets import QApplication

    from tttgui.gui.main_window import MainWindow, WindowOptions
    from tttgui.gui.settings import Settings

    scripted = opts.screenshot is not None
    settings = Settings(opts.settings or (_scratch_settings() if scripted else None))
    window = MainWindow(WindowOptions(checkpoint=opts.checkpoint, data=opts.data, device=opts.device,
                                      interactive=not scripted), settings, session_factory)
    window.apply_theme()
    hints = QApplication.styleHints()
    if hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(lambda *_: window.apply_theme())
    script = None
    if scripted:
        from tttgui.gui.scripted import ScriptedRun

        script = ScriptedRun(window, opts)
    return window, script


def _scratch_settings() -> Path:
    """A scripted run starts from the default layout (the same screenshot on every machine) and leaves the
    user's settings alone: its own ini file in a temporary folder, removed at exit."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="tttgui-scripted-")
    atexit.register(shutil.rmtree, folder, True)
    return Path(folder) / "tttgui.ini"
