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
    scroll = next(a for a in panel.findChildren(QScrollArea) if a.widget().isAncestorOf(panel.heat))
    vp = scroll.viewport()
    shown = [panel.start_button, panel.summary, panel.heat, panel.heat.plot]
    # the layout settles over a few events (on a busy CPU a scroll bar shows for a moment, 14 px narrower)
    qtbot.waitUntil(lambda: scroll.widget().height() <= vp.height() + 1
                    and not [w for w in shown if not _shown_in(w, vp)], timeout=3000)
    assert panel.heat.plot.height() >= 100          # rows of cells and the two-line column labels, readable


def _timm_names(window, qtbot):
    """The window's records with the layers named as a timm ViT's are (trunk.blocks.N.normK), shown."""
    import dataclasses

    plots = window.plots
    qtbot.waitUntil(lambda: plots.point_counts()["entropy"] == 1, timeout=10000)
    records = plots._records
    names = [f"trunk.blocks.{i // 2 + 10}.norm{i % 2 + 1}" for i in range(len(records[0].layers))]
    plots.show_records([dataclasses.replace(r, layers=tuple(dataclasses.replace(s, name=n)
                                                            for s, n in zip(r.layers, names))) for r in records])
    return names


def test_a_timm_layer_name_is_shown_whole_at_1280x720(qtbot, window):
    """The walk-through's ViT read "trunk.blocks.0.no" in the layer box (10 characters wide at any size)."""
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.width() == 1280 and window.height() == 720, timeout=3000)
    names = _timm_names(window, qtbot)
    box = window.plots.layer_box
    box.setCurrentIndex(len(names) - 1)
    qtbot.wait(50)
    room = box.style().subControlRect(box.style().ComplexControl.CC_ComboBox, _option(box),
                                      box.style().SubControl.SC_ComboBoxEditField, box).width()
    assert box.fontMetrics().horizontalAdvance(names[-1]) <= room, (names[-1], room)
    assert box.toolTip() == names[-1]
    assert box.itemData(0, 3) == names[0]          # Qt.ToolTipRole: the open list names each layer in full
    # the long names widen neither the window nor the plots' minimum
    assert window.minimumSizeHint().width() <= 1024
    assert window.plots.minimumSizeHint().width() <= window.plots.canvas.minimumWidth() + 10


def test_a_layer_name_too_long_for_its_box_is_elided_in_the_middle(qtbot, window):
    names = _timm_names(window, qtbot)
    box = window.plots.layer_box
    box.setCurrentIndex(len(names) - 1)
    box.setFixedWidth(box.minimumSizeHint().width())      # as narrow as the layout may make it
    qtbot.wait(50)
    shown = box.shown_text()
    assert "…" in shown and shown.startswith("trunk.b") and shown.endswith(names[-1][-7:]), shown
    assert box.toolTip() == names[-1]


def test_history_names_the_image_on_one_line(qtbot, window, tmp_path):
    """The History's image column showed the data folder's path, wrapped over two lines; it shows the image's
    file in the folder now (the full path on hover) and the export keeps the data set in `image`."""
    import csv
    from pathlib import Path

    from tttgui.gui.history import COLUMNS

    with qtbot.waitSignal(window.run_done, timeout=30000):
        window.step()
    qtbot.waitUntil(lambda: len(window.history.rows) == 1, timeout=5000)
    row = window.history.rows[0]
    col = COLUMNS.index("image")
    proxy = window.history_pane.proxy
    cell = proxy.index(0, col)
    text = cell.data()
    assert text == Path(window.dataset.item_name(row.index)).relative_to(window.dataset.source).as_posix(), text
    assert text.endswith(".png") and "\n" not in text
    table = window.history_view
    assert not table.wordWrap()
    assert table.horizontalHeader().sectionSize(col) >= table.fontMetrics().horizontalAdvance(text)
    tip = cell.data(3)                                    # Qt.ToolTipRole
    assert window.dataset.item_name(row.index) in tip and window.dataset.source in tip
    assert window.export_statistics(str(tmp_path / "h.csv"))
    (exported,) = list(csv.DictReader((tmp_path / "h.csv").open(newline="")))
    assert tuple(exported) == COLUMNS and exported["image"] == window.dataset.source     # the CSV as before


def test_history_image_text_for_each_kind_of_data_set():
    from tttgui.gui.history import HistoryRow, image_text

    def row(image, item, index=7):
        blank = {f: "" for f in HistoryRow.__dataclass_fields__}
        return HistoryRow(**{**blank, "image": image, "item": item, "index": index})

    assert image_text(row("/d/test", "/d/test/cat/0007.png")) == "cat/0007.png"            # a folder
    assert image_text(row("/d/one.png", "/d/one.png")) == "one.png"                          # one image file
    assert image_text(row("3 image files", "/x/b.jpg")) == "b.jpg"                           # dropped files
    assert image_text(row("/c/cifar (test)", "/c/cifar (test)[7]")) == "cifar (test) #7"    # arrays, no files
    assert image_text(row("/d/test", "")) == "test #7"                                       # no name recorded
