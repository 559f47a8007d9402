"""The window on a researcher's screen (issue 20): what a step needs shows without scrolling at 1280×720, the
window shrinks to 1024 px wide, and no plot is pushed out of its cell by its title."""
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QScrollArea, QToolBar

from test_gui import app_threads, assets, window  # noqa: F401  (fixtures)


def _shown_in(widget, viewport) -> bool:
    """The widget lies wholly inside the scroll area's viewport (no scrolling needed to reach it)."""
    rect = QRect(widget.mapTo(viewport, QPoint(0, 0)), widget.size())
    return widget.isVisible() and viewport.rect().contains(rect)


def test_a_step_needs_no_scrolling_at_1280x720(qtbot, window):
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.width() == 1280 and window.height() == 720, timeout=3000)
    qtbot.wait(50)
    scroll = next(a for a in window.findChildren(QScrollArea) if a.widget().isAncestorOf(window.method_panel))
    vp = scroll.viewport()
    needed = [window.model_panel.status, window.model_panel.open_button, window.shift_panel.corruption,
              window.shift_panel.severity, window.method_panel.method, window.method_panel.steps,
              window.method_panel.protocol, window.method_panel.seed]
    assert [w for w in needed if not _shown_in(w, vp)] == []
    for action in (window.step_action, window.run_action):
        button = window.findChild(QToolBar).widgetForAction(action)
        assert button.isVisible() and window.rect().contains(QRect(button.mapTo(window, QPoint(0, 0)),
                                                                   button.size()))


def test_window_shrinks_to_1024_and_plots_fit_their_cells(qtbot, window):
    assert window.minimumSizeHint().width() <= 1024
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.width() == 1024, timeout=3000)
    qtbot.wait(50)
    center = window.center.geometry()
    assert window.centralWidget().mapTo(window, QPoint(0, 0)).x() + center.width() <= window.width()
    for w in window.plots.widgets:
        plot = w.getPlotItem()
        assert plot.width() <= w.width() + 0.5, plot.titleLabel.text      # not clipped by the next dock
        assert plot.titleLabel.itemRect().width() <= w.width()


def test_method_names_are_not_cut_at_1280x720(qtbot, window):
    """On a GroupNorm model Tent is named "Tent (GN affine)"; in half a row of the Method panel it read
    "Tent (GN affi"."""
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.width() == 1280 and window.height() == 720, timeout=3000)
    box = window.method_panel.method
    assert window.method_panel.set_method("tent")
    qtbot.wait(50)
    assert box.currentText() == "Tent (GN affine)"
    room = box.style().subControlRect(box.style().ComplexControl.CC_ComboBox, _option(box),
                                      box.style().SubControl.SC_ComboBoxEditField, box).width()
    widest = max(box.fontMetrics().horizontalAdvance(box.itemText(i)) for i in range(box.count()))
    assert widest <= room, (widest, room)


def _option(box):
    from PySide6.QtWidgets import QStyleOptionComboBox

    opt = QStyleOptionComboBox()
    box.initStyleOption(opt)
    return opt


def test_a_batch_grid_shows_without_scrolling_at_1280x720(qtbot, window, tmp_path):
    """At 1280×720 the Batch tab (in the History dock, ~40 % of the height) showed the heatmap's first 28 px: the
    plots' preferred 480 px entered the summary's height-for-width, so the tab's content was 560 px tall in a
    233 px viewport. The grid's controls, summary and heatmap with its axis now fit the dock."""
    from test_gui_batch import _folder

    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.width() == 1280 and window.height() == 720, timeout=3000)
    assert window.open_data(str(_folder(tmp_path / "c", n=4, broken=False)))
    window.show_batch()
    panel = window.batch_panel
    panel.choose(["gaussian_noise", "fog"], ["3", "5"], ["source", "tent"])
    panel.count.setValue(4)
    panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=120000)
    assert panel.last is not None, window.last_error
    qtbot.wait(100)
    scroll = next(a for a in panel.findChildren(QScrollArea) if a.widget().isAncestorOf(panel.heat))
    vp = scroll.viewport()
    assert scroll.widget().height() <= vp.height() + 1, (scroll.widget().height(), vp.height())
    shown = [panel.start_button, panel.summary, panel.heat, panel.heat.plot]
    assert [w for w in shown if not _shown_in(w, vp)] == []
    assert panel.heat.plot.height() >= 100          # rows of cells and the two-line column labels, readable
