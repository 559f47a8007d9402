"""Side by side (issue 20, item 5): a pinned episode's curves over another method's on the same image; a History
row's plots shown again by a click; rows deleted, filtered and summarised per method."""
from PySide6.QtCore import Qt

from test_gui import app_threads, assets, window  # noqa: F401  (fixtures)
from tttgui.gui.history import COLUMNS


def _step(qtbot, win, n=1):
    had = len(win.controller.buffer.snapshot()[2])
    win.run_steps.setValue(n)
    with qtbot.waitSignal(win.run_done, timeout=60000):
        win.run()
    qtbot.waitUntil(lambda: len(win.controller.buffer.snapshot()[2]) == had + n, timeout=10000)


def _method(qtbot, win, name):
    with qtbot.waitSignal(win.image_ready, timeout=30000):
        win.method_panel.set_method(name)    # the item text is the display name


def _image(qtbot, win, index):
    with qtbot.waitSignal(win.image_ready, timeout=30000):
        win.select_image(index)


def test_pinned_curves_overlay_another_method_on_the_same_image(qtbot, window):
    _step(qtbot, window, 3)
    assert window.compare.pin_current()
    _method(qtbot, window, "tent")
    _step(qtbot, window, 1)
    assert window.compare.visible_points() == 3          # ttt's three losses, dashed, beside tent's one
    assert window.plots.point_counts()["loss"] == 1
    assert window.compare.label.isVisible() and window.compare.label.text().startswith("Pinned (dashed): TTT on")
    assert window.plots.loss_plot.getViewBox().viewRange()[0][1] >= 3     # the axis shows the pinned steps
    _image(qtbot, window, 1)                              # another image: nothing to compare
    assert window.compare.visible_points() == 0 and "not shown" in window.compare.label.text()
    window.compare.unpin()
    assert not window.compare.label.isVisible()
    _step(qtbot, window, 1)                               # a pinned Tent reads as the Method list names it
    assert window.compare.pin_current()
    assert window.compare.label.text().startswith("Pinned (dashed): Tent (GN affine) on image 1")


def test_clicking_a_history_row_shows_its_plots_again(qtbot, window):
    _step(qtbot, window, 3)
    _image(qtbot, window, 2)
    _step(qtbot, window, 1)
    pane = window.history_pane
    assert window.history.rowCount() == 2
    rect = pane.table.visualRect(pane.proxy.index(0, 0))
    qtbot.mouseClick(pane.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.plots.point_counts()["loss"] == 3 and "History row 1" in window.plots.summary.text()
    _step(qtbot, window, 1)                               # the live episode draws again
    qtbot.waitUntil(lambda: window.plots.point_counts()["loss"] == 2, timeout=10000)
    assert window.compare.viewing is None


def test_history_rows_delete_filter_and_summarise(qtbot, window):
    _step(qtbot, window, 1)
    _method(qtbot, window, "tent")
    _step(qtbot, window, 1)
    pane, model = window.history_pane, window.history
    assert [r.method for r in model.rows] == ["ttt", "tent"]
    column = list(COLUMNS).index("method")             # the exported name in the cell, the full one as tooltip
    assert model.data(model.index(1, column)) == "tent"
    assert model.data(model.index(1, column), Qt.ItemDataRole.ToolTipRole) == "Tent (GN affine)"
    tips = [model.headerData(i, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole) for i in range(len(COLUMNS))]
    assert all(tips) and "asked for" in tips[list(COLUMNS).index("steps_config")]   # every header says what it is
    text = pane.summary.text()
    assert text.startswith("Accuracy before → after: ttt ") and "; tent " in text and text.count("/1 → ") == 2
    pane.filter.setText("TENT")
    assert pane.proxy.rowCount() == 1 and "ttt" not in pane.summary.text() and "tent" in pane.summary.text()
    pane.filter.setText("")
    pane.table.selectRow(0)
    qtbot.keyClick(pane.table, Qt.Key.Key_Delete)
    assert [r.method for r in model.rows] == ["tent"]
    _image(qtbot, window, 3)
    _step(qtbot, window, 1)                               # a new episode gets a new number, not row 2's
    assert [r.row for r in model.rows] == [2, 3]


def test_accuracy_by_method_counts_labelled_rows_only():
    from types import SimpleNamespace as Row

    from tttgui.gui.history import accuracy_by_method, accuracy_text

    rows = [Row(method="ttt", correct_before="no", correct_after="yes"),
            Row(method="ttt", correct_before="yes", correct_after="yes"),
            Row(method="tent", correct_before="", correct_after="")]
    assert accuracy_by_method(rows) == [("ttt", 2, 1, 2)]
    assert accuracy_text(rows) == "Accuracy before → after: ttt 1/2 → 2/2 (50% → 100%)"


def test_pin_right_after_a_switch_of_image_does_not_label_the_old_curves_as_the_new_image(qtbot, window):
    """Until the worker has started the image just picked, the buffer holds the last image's records: pinning them
    as "image 4" drew image 0's curves dashed over image 4's run."""
    for _ in range(3):
        with qtbot.waitSignal(window.run_done, timeout=20000):
            window.step()
    with qtbot.waitSignal(window.image_ready, timeout=30000):
        window.select_image(4)
        assert not window.compare.pin_current() and window.compare.pin is None   # not ready yet: refused
    for _ in range(2):
        with qtbot.waitSignal(window.run_done, timeout=20000):
            window.step()
    assert window.compare.pin_current() and window.compare.pin.key[0] == 4
    assert window.compare.pin.records == window.controller.buffer.snapshot()[2]
