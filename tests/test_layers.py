"""Architecture rules: the core never imports Qt; `tttgui` and `python -m tttgui` answer headless."""
import subprocess
import sys
from pathlib import Path

import pytest

import tttgui

CORE = ["tttgui.data", "tttgui.models", "tttgui.training", "tttgui.stats", "tttgui.augment", "tttgui.errors",
        "tttgui.corruptions", "tttgui.methods", "tttgui.session", "tttgui.evaluation", "tttgui.cli",
        "tttgui.results", "tttgui.cell", "tttgui.vectorized",
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


def test_top_level_help_lists_the_window_options_and_the_subcommands(capsys):
    from tttgui.cli import build_parser, main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for word in ("--screenshot", "--checkpoint", "--data", "--method", "eval", "train", "corrupt"):
        assert word in out, word
    args = build_parser().parse_args(["eval", "--data", "x", "--out", "y"])   # the window's defaults stay out
    assert args.device == "auto" and not hasattr(args, "screenshot")


def imports_of(path: Path, root: Path) -> set[str]:
    """tttgui modules a file imports anywhere (top level or inside functions)."""
    import ast

    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("tttgui")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tttgui"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    modules = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
               for p in root.rglob("*.py")}
    return {m for m in out if m in modules}


ENGINE = ["tttgui.results", "tttgui.cell", "tttgui.vectorized", "tttgui.evaluation", "tttgui.session",
          "tttgui.store"]


def test_evaluation_engine_has_no_import_cycle():
    """results <- cell <- vectorized <- evaluation, with no import back up (not even inside a function)."""
    root = Path(tttgui.__file__).parent
    graph = {m: imports_of(root.parent / (m.replace(".", "/") + ".py"), root) & set(ENGINE)
             for m in ENGINE if (root.parent / (m.replace(".", "/") + ".py")).is_file()}

    def reach(start):
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen and m in graph:
                seen.add(m)
                todo += graph[m]
        return seen
    for m in graph:
        assert m not in reach(m), f"{m} imports itself back through {sorted(reach(m))}"
    assert not graph["tttgui.results"], "the result layer imports the engine"
    assert "tttgui.evaluation" not in graph["tttgui.vectorized"]


def test_one_result_layer_and_each_name_defined_once():
    """One row type and one writer: no other module declares result rows, CSV writers or version lists, and the
    benchmark corruptions and method names are spelled out in one place each."""
    import re

    root = Path(tttgui.__file__).parent
    texts = {p: p.read_text() for p in list(root.rglob("*.py")) + list((root.parent / "benchmarks").glob("*.py"))}
    for p, text in texts.items():
        if p.name == "results.py" and p.parent == root:
            continue
        for pattern in (r"class \w*(ImageRow|ImageResult|EpisodeResult|SummaryRow)\b", r"def library_versions",
                        r"csv\.(DictWriter|writer)\(", r"def paired_difference"):
            assert not re.search(pattern, text), f"{p} defines {pattern} again"
        if p.name != "registry.py":
            assert '"shot_noise", "impulse_noise"' not in text, f"{p} lists the benchmark corruptions again"
            assert '"ttt++": "' not in text, f"{p} maps method names again"
