"""The small things of issue 20: messages a user can read, shortcuts that are shown, scripted runs that say why
they ended."""
from test_gui import _run_cli, app_threads, assets, window  # noqa: F401  (fixtures)


def test_long_messages_are_cut_at_a_word():
    from tttgui.gui.errors import LIMIT, one_line

    text = one_line(RuntimeError("word " * 100), "context")
    assert len(text) <= LIMIT + 2 and text.endswith(" …") and text[:-2].endswith("word")


def test_toolbar_tooltips_name_their_keys(window):
    assert "F10" in window.step_action.toolTip() and "F5" in window.run_action.toolTip()
    assert "F6" in window.pause_action.toolTip() and "Esc" in window.stop_action.toolTip()
    assert "Ctrl+R" in window.reset_action.toolTip()


def test_shortcuts_dialog_lists_every_key_without_ampersands(window, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text: shown.append(text))
    window._show_shortcuts()
    assert "&" not in shown[0].replace("&nbsp;", "") and "Esc" in shown[0] and "<table>" in shown[0]


def test_scripted_run_names_the_valid_methods(window, capsys):
    from tttgui.gui.app import parse
    from tttgui.gui.scripted import ScriptedRun

    script = ScriptedRun(window, parse(["--data", "x", "--screenshot", "x.png", "--method", "bogus"]))
    script._configure()
    err = capsys.readouterr().err
    assert "unknown method 'bogus'; expected one of" in err and "ttt" in err and "tent" in err


def test_quit_after_says_it_ended_a_scripted_run(assets, tmp_path):
    r = _run_cli(["--checkpoint", assets["checkpoint"], "--data", assets["data"], "--steps", "50",
                  "--screenshot", str(tmp_path / "s.png"), "--quit-after", "1"], tmp_path)
    assert r.returncode == 1 and "--quit-after 1 ms ended the scripted run" in r.stderr, r.stderr


def test_a_start_up_failure_is_one_line_and_closes_the_window(qtbot, monkeypatch, capsys, tmp_path, app_threads):
    from tttgui.cli import main
    from tttgui.gui import engine

    def broken():
        raise ImportError("cannot import name 'x' from half-written module")

    monkeypatch.setattr(engine, "preload", broken)
    assert main(["--settings", str(tmp_path / "s.ini")]) == 2
    err = capsys.readouterr().err
    assert "the window could not start (ImportError: cannot import name 'x'" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_the_method_list_names_tent_for_what_it_is_on_the_model(window):
    panel = window.method_panel
    i = panel.names().index("tent")
    assert panel.method.itemText(i) == "Tent (GN affine)"          # the fixture's model is GroupNorm
    assert panel.set_method("tent") and panel.name() == "tent" and panel.values()["method"] == "tent"
    assert panel.config().method == "tent"


def test_restoring_saved_settings_with_a_method_change_does_not_raise(qtbot, tmp_path, app_threads):
    """Settings that load a method emit the Method panel's change before the window's own state existed
    (AttributeError '_auto_run_steps' in _method_changed)."""
    import sys

    from tttgui.gui.app import build_window, parse
    from tttgui.gui.settings import Settings

    ini = tmp_path / "s.ini"
    saved = Settings(str(ini))
    saved.set("method", {"method": "tent", "steps": 3, "lr": "", "protocol": "episodic"})
    errors = []
    hook, sys.excepthook = sys.excepthook, lambda *exc: errors.append(exc)
    try:
        win, _ = build_window(parse(["--settings", str(ini)]))
        qtbot.addWidget(win)
    finally:
        sys.excepthook = hook
    assert not errors and win.method_panel.name() == "tent"


def test_dropping_a_folder_or_a_broken_checkpoint_on_the_window(window, tmp_path):
    """Drag and drop goes through the window's file mixin (tttgui.gui.window_files): a folder opens as data, a
    .pt that is not a checkpoint is one line and the loaded model stays."""
    import numpy as np
    from PIL import Image
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    folder = tmp_path / "dropped" / "cat"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")

    def drop(path):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
        window.dropEvent(event)      # what Qt calls on a drop (a synthetic drop is not delivered offscreen)

    drop(tmp_path / "dropped")
    assert window.dataset is not None and len(window.dataset) == 4
    model = window.model_info["path"]
    bad = tmp_path / "random.pt"
    bad.write_bytes(b"not a checkpoint at all")
    drop(bad)
    from PySide6.QtTest import QTest

    for _ in range(100):
        if "random.pt" in (window.last_error or ""):
            break
        QTest.qWait(50)
    assert "random.pt" in window.last_error and "\n" not in window.last_error
    assert window.model_info["path"] == model
