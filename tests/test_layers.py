"""Architecture rules: the core never imports Qt; `tttgui` and `python -m tttgui` answer headless."""
import subprocess
import sys
from pathlib import Path

import tttgui

CORE = ["tttgui.data", "tttgui.models", "tttgui.training", "tttgui.stats", "tttgui.augment", "tttgui.errors",
        "tttgui.corruptions", "tttgui.methods", "tttgui.session", "tttgui.evaluation", "tttgui.cli",
        "tttgui.commands.train", "tttgui.commands.eval", "tttgui.commands.corrupt"]


def test_core_never_imports_qt():
    code = ("import sys\n"
            + "".join(f"import {m}\n" for m in CORE)
            + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'PyQt5', "
              "'PyQt6', 'shiboken6') or m.startswith('tttgui.gui'))\n"
            + "print(bad); sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_core_sources_have_no_qt_imports():
    root = Path(tttgui.__file__).parent
    for path in root.rglob("*.py"):
        if "gui" in path.relative_to(root).parts:
            continue
        text = path.read_text()
        for name in ("PySide6", "pyqtgraph", "PyQt"):
            assert f"import {name}" not in text and f"from {name}" not in text, f"{path} imports {name}"


def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "tttgui", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for command in ("train", "eval", "corrupt"):
        assert command in proc.stdout
