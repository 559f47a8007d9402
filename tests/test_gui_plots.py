"""Plots a reader can trust (issue 20, item 7): axis labels, whole-number steps, ranges that start afresh with
each episode, empty plots that say why, and PNG/SVG export."""
from test_gui import app_threads, assets, window  # noqa: F401  (fixtures)


def _ticks(axis, lo, hi):
    size = axis.width() if axis.orientation in ("top", "bottom") else axis.height()
    return [v for _, values in axis.tickValues(lo, hi, size) for v in values]


def test_step_axes_are_whole_numbers_without_prefix(qtbot, window):
    qtbot.waitUntil(lambda: window.plots.point_counts()["entropy"] == 1, timeout=10000)
    for plot in (window.plots.loss_plot, window.plots.conf_plot, window.plots.cos_plot):
        axis = plot.getAxis("bottom")
        (x0, x1), _ = plot.getViewBox().viewRange()
        assert x1 - x0 >= 1, "a one-point episode must not be a 0.001-step sliver"
        assert all(float(v).is_integer() for v in _ticks(axis, 0, 3))
        assert axis.labelString().find("x0.") < 0 and "step" in axis.labelText
    for plot in window.plots.plot_items():
        assert plot.getAxis("left").labelText and plot.getAxis("bottom").labelText


def test_empty_plots_say_why(qtbot, window):
    qtbot.waitUntil(lambda: window.plots.point_counts()["entropy"] == 1, timeout=10000)
    assert window.plots.note("loss").startswith("no step yet")
    assert window.current_label is not None
    assert "label unknown" not in window.plots.note("cosine"), "the true class is known (starred)"
    window.method_panel.set_method("source")
    qtbot.waitUntil(lambda: window.episode.config.method == "source"
                    and window.plots.point_counts()["entropy"] == 1, timeout=20000)
    assert "source does not adapt" in window.plots.note("loss")


def test_ranges_start_afresh_with_each_episode(qtbot, window):
    window.method_panel.lr.setText("5")     # a large rate: losses far from the next method's
    window.method_panel.lr.editingFinished.emit()
    qtbot.waitUntil(lambda: window.episode.config.lr == 5.0, timeout=20000)
    window.run_steps.setValue(3)
    with qtbot.waitSignal(window.run_done, timeout=30000):
        window.run()
    window.method_panel.set_method("source")
    qtbot.waitUntil(lambda: window.episode.config.method == "source"
                    and window.plots.point_counts()["entropy"] == 1, timeout=20000)
    window._pull(force=True)
    (x0, x1), (y0, y1) = window.plots.loss_plot.getViewBox().viewRange()
    assert x1 <= 1.5 and y1 <= 1.5, "the loss plot kept the previous method's range"


def test_plots_export_as_png_and_svg(window, tmp_path):
    assert window.save_png(str(tmp_path / "p.svg"), plots=True)
    svg = (tmp_path / "p.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "Self-supervised" in svg
    assert window.save_png(str(tmp_path / "p.png"), plots=True)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    menu = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert any("SVG" in t for t in menu)


def test_channel_plot_draws_even_when_its_turn_comes_before_the_layer_list(qtbot, window):
    """Under load the plots are drawn in turns starting where the last frame stopped; when the channel plot's
    turn came before the layer list was filled, it said "the model has no norm layers" until the next step."""
    qtbot.waitUntil(lambda: window.plots.point_counts()["entropy"] == 1, timeout=10000)
    plots = window.plots
    records = plots._records
    plots._layer_names = None
    plots.layer_box.clear()
    plots._next = 5                      # the channel plot first
    plots.show_records(records)
    assert plots.layer_box.count() > 0 and plots.note("channels") == ""
    assert plots.chan_now.getData()[0] is not None and len(plots.chan_now.getData()[0]) > 0


def test_each_plot_says_on_hover_what_its_points_are(qtbot, window):
    """The loss at step k is the loss of the update into step k (StepRecord.loss); the tooltip says so, and the
    curve holds exactly those values at those steps."""
    from test_gui import _episode_records, _wait_plots

    window.step()
    _wait_plots(qtbot, window, 2)
    tips = [w.toolTip() for w in window.plots.widgets]
    assert len(tips) == 6 and all(len(t) > 40 for t in tips)
    assert "update into step k" in tips[0] and "Step 0 has no update" in tips[0]
    recs = _episode_records(window)
    xs, ys = window.plots.loss_curve.getData()
    assert list(xs) == [1] and abs(ys[0] - recs[1].loss) < 1e-9 and recs[0].loss is None


def test_before_shows_over_now_where_they_are_equal(qtbot, window):
    """At step 0 "before" and "now" are the same values; "before" was drawn under "now" in the same colour and
    hidden. It is drawn over "now" now, dashed in a shade of its own, and shows in the plot and its legend."""
    from PySide6.QtCore import Qt

    plots = window.plots
    qtbot.waitUntil(lambda: plots.point_counts()["entropy"] == 1, timeout=10000)
    plots.show_records(plots._records)
    pairs = ((plots.layer_plot, plots.mean_before, plots.mean_now),
             (plots.layer_plot, plots.var_before, plots.var_now), (plots.chan_plot, plots.chan_before, plots.chan_now))
    for plot, before, now in pairs:
        (bx, by), (_, ny) = before.getData(), now.getData()
        assert len(bx) > 0 and list(by) == list(ny), "step 0: before and now are equal"
        on_top = plot.scene().items(Qt.SortOrder.DescendingOrder)      # topmost first
        assert on_top.index(before.curve) < on_top.index(now.curve), "before is drawn under now"
        assert before.opts["pen"].color() != now.opts["pen"].color()
        assert before.opts["pen"].style() == Qt.PenStyle.DashLine
        names = [label.text for _, label in plot.legend.items]
        assert before.name() in names and now.name() in names
    # and it is seen: the channel plot's pixels include the before shade where the two curves coincide
    image = plots.widgets[5].grab().toImage()
    shade = plots.chan_before.opts["pen"].color().rgb()
    seen = sum(image.pixel(x, y) == shade for x in range(0, image.width()) for y in range(0, image.height()))
    assert seen > 10, seen
    plots.set_dark(True)     # on a dark background the shade is lighter than "now", still apart from it
    assert plots.chan_before.opts["pen"].color().lightness() > plots.chan_now.opts["pen"].color().lightness()
    plots.set_dark(False)
