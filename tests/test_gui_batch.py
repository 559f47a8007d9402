"""The batch evaluation as a grid (issue 20, item 4): corruptions × severities × methods through the eval engine,
unreadable images skipped and listed, a heatmap with values and a colour bar (before / after / change), partial
cells marked, and the files `tttgui eval` writes."""
import csv
import json

import numpy as np
from PIL import Image

from test_gui import CLASSES, app_threads, assets, window  # noqa: F401  (fixtures)


def _folder(root, n=10, broken=True):
    rng = np.random.default_rng(1)
    for name in CLASSES:
        (root / name).mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / CLASSES[i % 10] / f"{i}.png")
    if broken:
        (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return root


def test_grid_skips_unreadable_images_and_draws_every_cell(qtbot, window, tmp_path):
    assert window.open_data(str(_folder(tmp_path / "c")))
    window.show_batch()
    panel = window.batch_panel
    panel.choose(["contrast", "fog"], ["1", "5"], ["source", "ttt"])
    assert sorted(panel.corruptions.text().split(", ")) == ["contrast", "fog"]
    assert sorted(panel.methods.checked()) == ["source", "ttt"]
    panel.count.setValue(11)                       # every image, the broken one too
    window.method_panel.steps.setValue(1)
    panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=120000)
    res = panel.last
    assert res is not None, window.last_error
    assert {(s.corruption, s.severity, s.method) for s in res.summary} == {
        (c, s, m) for c in ("contrast", "fog") for s in (1, 5) for m in ("source", "ttt")}
    assert all(s.n == 10 for s in res.summary)     # the broken image is skipped, not fatal
    assert len(panel.skipped) == 1 and "Skipped 1 unreadable image" in panel.summary.text()
    assert "broken.png" in panel.summary.text()

    heat = panel.heat
    assert heat.isVisible() and len(heat.texts) == 8 and all(t for t in heat.cell_texts())
    after = {s: f"{s.error_after:.1f}" for s in res.summary}
    assert sorted(heat.cell_texts()) == sorted(after.values())
    assert heat.bar.levels() == (0.0, 100.0)
    heat.set_mode("before")                        # the source model's error: one column per severity
    assert len(heat.texts) == 4 and "without adaptation" in heat.plot.getPlotItem().titleLabel.text
    heat.set_mode("change")
    lo, hi = heat.bar.levels()
    assert lo == -hi and all(t.startswith(("+", "-")) for t in heat.cell_texts())

    out = tmp_path / "export"
    assert panel.export(str(out))
    with open(out / "summary.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 8
    with open(out / "images.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 80
    info = json.loads((out / "run.json").read_text())
    assert sorted(info["config"]["corruptions"]) == ["contrast", "fog"]
    assert sorted(info["config"]["methods"]) == ["source", "ttt"]
    assert info["complete"] is True and info["cells"] == {"finished": 8, "total": 8}
    assert len(info["skipped"]) == 1 and "broken.png" in info["skipped"][0]["reason"]


def test_grid_follows_the_panels_until_the_user_ticks(window, tmp_path):
    assert window.open_data(str(_folder(tmp_path / "c", broken=False)))
    window.show_batch()
    panel = window.batch_panel
    window.shift_panel.set_choice("fog", 2)
    panel.refresh_choices()
    assert panel.corruptions.checked() == ["fog"] and panel.severities.checked() == ["2"]
    panel.choose(["frost"], ["3"], ["tent"])
    window.shift_panel.set_choice("snow", 4)
    panel.refresh_choices()
    assert panel.corruptions.checked() == ["frost"] and panel.methods.checked() == ["tent"]
    panel.choose([], ["3"], ["tent"])
    panel.start()
    assert not panel.running and "no corruption ticked" in window.last_error


def test_cancelled_batch_marks_its_partial_cell(qtbot, window, tmp_path):
    assert window.open_data(str(_folder(tmp_path / "c", n=20, broken=False)))
    window.show_batch()
    panel = window.batch_panel
    panel.choose(["contrast", "fog"], ["5"], ["ttt"])
    panel.count.setValue(20)
    window.method_panel.steps.setValue(3)
    panel.start()
    qtbot.waitUntil(lambda: panel.progress.value() >= 1, timeout=30000)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    assert panel.summary.text().startswith("Cancelled")
    cells = panel.last.summary
    assert len(cells) == 1 and cells[0].n < 20    # cancelled within the first cell: fog never ran
    assert sorted(panel.heat.cell_texts()) == sorted([f"{cells[0].error_after:.1f}*", "not run"])
    assert "partial" in panel.heat.note.text() and "not run" in panel.heat.note.text()


def test_partial_and_missing_cells_in_the_grid():
    from tttgui.gui.heatmap import grid_values
    from tttgui.results import SummaryRow

    summary = [SummaryRow("fog", 5, "ttt", "episodic", 10, 50.0, 40.0), SummaryRow("fog", 5, "tent", "episodic",
                                                                                     4, 50.0, 25.0)]
    rows, cols, values, partial = grid_values(summary, "change", asked=10)
    assert rows == ["fog"] and cols == [("ttt", 5), ("tent", 5)]
    assert values.tolist() == [[-10.0, -25.0]] and partial.tolist() == [[False, True]]
    assert grid_values(summary, "before", asked=10)[1] == [("", 5)]
    # 'before' is one cell for every method: the complete cell's value, not the cancelled one's on 4 images
    cut = [summary[0], SummaryRow("fog", 5, "tent", "episodic", 4, 75.0, 25.0)]
    for order in (cut, cut[::-1]):
        _, _, values, partial = grid_values(order, "before", asked=10)
        assert values.tolist() == [[50.0]] and partial.tolist() == [[False]]
    rows, cols, values, _ = grid_values(summary, "after", 10, planned=[("fog", s, m) for s in (3, 5)
                                                                       for m in ("ttt", "tent")])
    assert cols == [("ttt", 3), ("ttt", 5), ("tent", 3), ("tent", 5)]     # grouped by method
    assert np.isnan(values[0, 0]) and values[0, 1] == 40.0               # s3 never ran


def test_gradient_diagnostic_scatter(qtbot, window, tmp_path):
    """Beyond any anchor (issue 20, item 7): the TTT paper's diagnostic as a scatter over the batch's images, the
    correlation printed; it needs the episodic protocol and says so otherwise."""
    assert window.open_data(str(_folder(tmp_path / "c", n=8, broken=False)))
    window.show_batch()
    panel = window.batch_panel
    panel.choose(["fog"], ["5"], ["source", "ttt"])
    panel.count.setValue(8)
    window.method_panel.steps.setValue(1)
    assert not panel.scatter.isVisible()
    panel.diagnose.setChecked(True)
    panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=120000)
    res = panel.last
    assert res is not None, window.last_error
    ttt = [r for r in res.images if r.method == "ttt"]
    assert len(ttt) == 8 and all(-1 <= r.grad_cosine <= 1 for r in ttt)
    assert panel.scatter.isVisible() and list(panel.scatter.by_method) == ["ttt"]   # source has nothing to plot
    x, y, r = panel.scatter.by_method["ttt"]
    assert len(x) == 8 and f"r = {r:+.2f} (n = 8)" in panel.scatter.text.text()
    out = tmp_path / "export"
    assert panel.export(str(out))
    with open(out / "images.csv", newline="") as f:
        rows = [d for d in csv.DictReader(f) if d["method"] == "ttt"]
    assert all(d["grad_cosine"] and d["loss_decrease"] for d in rows)

    window.method_panel.protocol.setCurrentText("online")
    panel.start()
    assert not panel.running and "episodic" in window.last_error


def test_aws_steps_only_on_batches_and_the_batch_size_reaches_the_engine(qtbot, window, tmp_path):
    """aws learns from the pairs of a batch: Step and Run are off on one image and say where it runs, and the Batch
    tab's B (online streams only) takes it to the engine, which refuses B = 1 and runs B = 16."""
    assert window.open_data(str(_folder(tmp_path / "c", broken=False)))
    qtbot.waitUntil(lambda: window.step_action.isEnabled(), timeout=20000)
    window.show_batch()
    panel = window.batch_panel
    window.method_panel.protocol.setCurrentText("episodic")
    assert not panel.batch.isEnabled() and panel.config().batch_size is None
    window.method_panel.protocol.setCurrentText("online")
    window.method_panel.set_method("aws")
    assert panel.batch.isEnabled() and panel.config().batch_size is None        # B = paper's
    panel.batch.setValue(1)
    assert panel.config().batch_size == 1
    qtbot.waitUntil(lambda: window.episode is not None and not window.loading, timeout=20000)
    assert not window.step_action.isEnabled() and not window.run_action.isEnabled()
    assert "AWS (linear classifier) learns from the pairs of a batch" in window.step_action.toolTip()
    assert "Batch" in window.step_action.toolTip()
    panel.choose(["fog"], ["5"], ["aws"])
    panel.count.setValue(10)
    window.last_error = ""
    panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=60000)
    assert "online gives it 1 image(s) per update" in window.last_error
    panel.batch.setValue(16)
    panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=120000)
    assert panel.last is not None and panel.config_run.batch_size == 16, window.last_error
    assert [(s.method, s.n) for s in panel.last.summary] == [("aws", 10)]
    window.method_panel.set_method("ttt")              # a method that steps on one image: Step is back
    qtbot.waitUntil(lambda: window.step_action.isEnabled(), timeout=20000)
    window.method_panel.protocol.setCurrentText("episodic")
    for name in ("aws", "aws-mean"):     # chosen while one image is the protocol: no error, Step says where it runs
        window.method_panel.set_method(name)
        qtbot.waitUntil(lambda: not window.loading, timeout=20000)
        label = window.method_label(name)             # "AWS, L_cl batch mean (linear classifier)", as listed
        assert not window.step_action.isEnabled() and f"{label} learns from the pairs" in window.step_action.toolTip()
        qtbot.waitUntil(lambda: "run it on batches" in window.plots.message, timeout=20000)
        assert window.clean is not None and "choose Protocol online" in window.last_error   # the image stays
    window.method_panel.set_method("ttt")               # a method with an episodic recipe starts on that image
    qtbot.waitUntil(lambda: window.step_action.isEnabled(), timeout=20000)


def test_the_batch_names_methods_as_the_user_reads_them(qtbot, window, tmp_path):
    """Issue 18, item 2: on a GroupNorm model Tent is 'Tent (GN affine)' wherever a user reads it: the Batch tab's
    menu, its summary, the heatmap's columns and the diagnostic's legend; the keys and exports keep the registry
    name."""
    from PySide6.QtGui import QFontMetrics

    from tttgui.gui.heatmap import column_label

    assert window.open_data(str(_folder(tmp_path / "c", n=4, broken=False)))
    window.show_batch()
    panel = window.batch_panel
    assert window.method_label("tent") == "Tent (GN affine)"       # the fixture's model is GroupNorm
    panel.choose(["fog"], ["5"], ["source", "tent"])
    assert sorted(panel.methods.checked()) == ["source", "tent"]
    texts = {a.data(): a.text() for a in panel.methods.menu().actions()}
    assert texts["tent"] == "Tent (GN affine)" and texts["source"] == "No adaptation"
    assert texts["actmad"] == "ActMAD" and texts["ttt"] == "TTT" and texts["memo"] == "MEMO"   # no 'actmad' beside it
    assert sorted(panel.methods.text().split(", ")) == ["No adaptation", "Tent (GN affine)"]
    panel.count.setValue(4)
    qtbot.waitUntil(lambda: panel.summary.width() > 200, timeout=5000)   # beside the controls, readable (it was 0
    panel.start()                                                       # wide before the first result)
    qtbot.waitUntil(lambda: not panel.running, timeout=120000)
    assert panel.last is not None, window.last_error
    assert "Tent (GN affine)" in panel.summary.text() and " tent " not in panel.summary.text()
    axis = panel.heat.plot.getAxis("bottom")
    ticks = axis._tickLevels[0]
    assert any("Tent (GN" in label for _, label in ticks), ticks
    panel.heat.setFixedWidth(280)        # squeezed: each label still fits its column (they overlapped)
    view = panel.heat.plot.getPlotItem().getViewBox()
    qtbot.waitUntil(lambda: view.width() < 200, timeout=5000)
    fits = all(QFontMetrics(axis.font()).horizontalAdvance(line) <= view.width() / 2
               for _, label in axis._tickLevels[0] for line in label.split("\n"))
    assert fits, (view.width(), axis._tickLevels[0])
    heat = panel.heat                    # a name too long for its column: the registry name, keyed in the note
    heat.set_summary(heat.summary, heat.asked, heat.planned, {"tent": "Tent, " + "a long name " * 4})
    assert any(label == "tent" for _, label in axis._tickLevels[0]), axis._tickLevels[0]
    assert "registry names" in heat.note.text() and "tent = Tent, a long name" in heat.note.toolTip()
    assert {s.method for s in panel.last.summary} == {"source", "tent"}            # data keep the registry name
    # a long name wraps inside its column; a long ticked label makes the button count instead of widening the tab
    long = {"aws-mean": "AWS, L_cl batch mean (linear classifier)"}
    assert column_label("aws-mean", 5, 2, long) == "AWS, L_cl batch mean\n(linear classifier)"
    # a name that does not fit gives way to the registry name: cut names read alike ('AWS…' for aws and aws-mean)
    assert column_label("aws-mean", 3, 2, long, severities=2) == "aws-mean\ns3"          # two lines at most
    assert column_label("aws-mean", 5, 2, long, width=10) == "aws-mean"                  # a narrow column
    assert column_label("tent", 5, 2, {"tent": "Tent (GN affine)"}, width=10) == "Tent (GN\naffine)"
    panel.methods.set_items(["aws", "aws-mean"], ["aws", "aws-mean"], {"aws": "AWS (linear classifier)", **long})
    assert panel.methods.text() == "2 methods" and "AWS, L_cl batch mean" in panel.methods.toolTip()
    panel.methods.set_checked(["aws-mean"])
    assert panel.methods.text().endswith("…") and len(panel.methods.text()) == panel.methods.LONGEST


def test_a_new_batch_replaces_the_last_grid_and_an_export_describes_the_run_it_holds(qtbot, window, tmp_path, assets):
    """Export wrote the last batch's rows beside the settings of a batch started (or failed) since, and the data
    folder open at export time; a failed batch left the old heatmap on screen."""
    import csv
    import json

    a = _folder(tmp_path / "a", broken=False)
    assert window.open_data(str(a))
    window.show_batch()
    panel = window.batch_panel
    window.method_panel.steps.setValue(1)
    panel.choose(["contrast"], ["1"], ["source", "ttt"])
    panel.count.setValue(4)
    panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=60000)
    assert window.open_data(assets["data"])               # the user looks at another folder, then exports
    assert panel.export(str(tmp_path / "x"))
    info = json.loads((tmp_path / "x" / "run.json").read_text())
    with open(tmp_path / "x" / "summary.csv", newline="") as f:
        methods = {r["method"] for r in csv.DictReader(f)}
    assert str(a) in str(info["data"]) and methods == set(info["config"]["methods"]) == {"source", "ttt"}
    assert window.open_data(str(a))
    window.method_panel.protocol.setCurrentText("online")  # a batch the worker refuses (AWS needs B >= 2)
    panel.batch.setValue(1)
    panel.choose(["fog"], ["5"], ["aws"])
    panel.start()
    assert panel.running, window.last_error
    assert not panel.export_button.isEnabled() and not panel.heat.isVisible()   # the old grid is gone at once
    qtbot.waitUntil(lambda: not panel.running, timeout=60000)
    assert "failed" in panel.summary.text() and not panel.heat.isVisible() and not panel.export_button.isEnabled()
    assert not panel.export(str(tmp_path / "y")) and not (tmp_path / "y" / "run.json").exists()


def test_cells_nobody_asked_for_are_blank_not_not_run(qtbot):
    """Clean plus severity 5: the clean row under s5 and the fog row under clean were never planned; only a planned
    cell that has no result says "not run"."""
    from tttgui.gui.heatmap import Heatmap
    from tttgui.results import CLEAN, SummaryRow

    heat = Heatmap()
    qtbot.addWidget(heat)
    planned = [(CLEAN, 0, "ttt"), ("fog", 5, "ttt"), ("snow", 5, "ttt")]
    summary = [SummaryRow(CLEAN, 0, "ttt", "episodic", 4, 10.0, 5.0), SummaryRow("fog", 5, "ttt", "episodic", 4, 50.0,
                                                                              25.0)]
    heat.set_summary(summary, 4, planned)
    texts = heat.cell_texts()            # 3 rows (clean, fog, snow) x 2 columns (clean, s5)
    assert len(texts) == 6 and texts.count("") == 3 and texts.count("not run") == 1     # snow s5 was cancelled
