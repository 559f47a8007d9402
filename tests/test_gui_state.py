"""One job at a time, state that stays true, work off the GUI thread, the views a step used (issue 20)."""
import threading

import numpy as np
from PIL import Image

from test_gui import CLASSES, app_threads, assets, window  # noqa: F401  (fixtures)


def _records(win):
    return win.controller.buffer.snapshot()[2]


def test_ten_quick_step_presses_are_ten_steps(qtbot, window):
    for _ in range(10):
        window.step_action.trigger()
    assert window.queued > 0 and window.step_action.text().startswith("Step (+")
    qtbot.waitUntil(lambda: not window.running and len(_records(window)) == 11, timeout=60000)
    assert window.step_action.text() == "Step"


def _cifarlike(folder, n=10):
    rng = np.random.default_rng(1)
    for name in CLASSES:
        (folder / name).mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / CLASSES[i % 10] / f"{i}.png")
    return folder


def test_step_and_run_wait_visibly_for_a_batch(qtbot, window, tmp_path):
    assert window.open_data(str(_cifarlike(tmp_path / "c")))
    qtbot.waitUntil(lambda: window.step_action.isEnabled(), timeout=20000)
    window.show_batch()
    panel = window.batch_panel
    panel.count.setValue(10)
    window.method_panel.steps.setValue(3)
    panel.start()
    assert not window.step_action.isEnabled() and not window.run_action.isEnabled()
    assert "batch" in window.step_action.toolTip() and "Batch evaluation running" in window.statusBar().currentMessage()
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    qtbot.waitUntil(lambda: window.step_action.isEnabled(), timeout=20000)


def test_evaluate_waits_for_a_run(qtbot, window):
    window.show_batch()
    window.run_steps.setValue(100000)
    window.run()
    assert not window.batch_panel.start_button.isEnabled()
    with qtbot.waitSignal(window.run_done, timeout=5000):
        window.stop()
    assert window.batch_panel.start_button.isEnabled()


def test_run_n_survives_unrelated_method_edits(qtbot, window):
    window.run_steps.setValue(25)
    window.method_panel.lr.setText("0.01")
    window.method_panel.lr.editingFinished.emit()
    window.method_panel.seed.setValue(3)
    window.method_panel.optimizer.setCurrentIndex(1)
    assert window.run_steps.value() == 25


def test_failed_load_keeps_the_model_panel_true(qtbot, window, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 64)
    name = window.model_info["path"].rsplit("/", 1)[-1]
    with qtbot.waitSignal(window.error, timeout=10000):
        window.load_checkpoint(str(bad))
    text = window.model_panel.status.text()
    assert "Loading" not in text and name in text
    assert window.step_action.isEnabled()


def test_an_unreadable_image_shows_no_stale_episode(qtbot, window, tmp_path):
    folder = tmp_path / "d"
    (folder / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "cat" / "0.png")
    (folder / "cat" / "1.png").write_bytes(b"not a png")
    assert window.open_data(str(folder))
    qtbot.waitUntil(lambda: window.step_action.isEnabled(), timeout=20000)
    window.data_panel.select_index(1)
    assert "1.png is corrupt" in window.last_error
    assert window.episode is None and not window.step_action.isEnabled()
    assert "1.png is corrupt" in window.plots.note("probs")
    assert window.plots.point_counts()["entropy"] == 0
    assert window.shift_panel.shifted.pixmap() is None or window.shift_panel.shifted.pixmap().isNull()


def test_status_stops_offering_resume_after_reset(qtbot, window):
    window.run_steps.setValue(50)
    window.run()
    qtbot.waitUntil(lambda: len(_records(window)) >= 2, timeout=20000)
    with qtbot.waitSignal(window.run_done, timeout=5000):
        window.pause()
    assert "resumes" in window.statusBar().currentMessage()
    window.reset()
    assert "resume" not in window.statusBar().currentMessage().lower()
    assert window.run_action.text() == "Run"


def test_corruption_is_made_off_the_gui_thread(qtbot, window, monkeypatch):
    from tttgui.gui import engine

    seen, real = [], engine.apply_corruption
    monkeypatch.setattr(engine, "apply_corruption",
                        lambda *a, **k: seen.append(threading.current_thread() is threading.main_thread())
                        or real(*a, **k))
    window.shift_panel.set_choice("zoom_blur", 3)
    qtbot.waitUntil(lambda: window.episode is not None and window.episode.corruption == "zoom_blur"
                    and window.shifted is not None, timeout=20000)
    assert seen and not any(seen)


def test_views_shown_are_those_the_step_drew(qtbot, window):
    import torch

    with qtbot.waitSignal(window.run_done, timeout=20000):
        window.step()      # the session exists from here on
    method = window.controller.worker.session.adapter.method
    drawn, real = [], method.draw
    method.draw = lambda x, gen: drawn.append(real(x, gen)) or drawn[-1]
    with qtbot.waitSignal(window.run_done, timeout=20000):
        window.step()
    qtbot.waitUntil(lambda: "step 2 used" in window.shift_panel.views_title.text(), timeout=5000)
    views = method.display_views(drawn[0])[:16].clamp(0, 1)
    want = (views.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(window.shown_views, want)


def test_source_shows_no_views(qtbot, window):
    window.method_panel.set_method("source")
    title = window.shift_panel.views_title
    qtbot.waitUntil(lambda: title.text() == "Views: none (this method does not adapt)", timeout=20000)
    assert window.shown_views is None


def test_a_step_right_after_an_edit_uses_the_edit(qtbot, window):
    window.method_panel.set_method("source")      # the restart waits 150 ms for more edits
    with qtbot.waitSignal(window.run_done, timeout=20000):
        window.step()
    assert window.episode.config.method == "source"
    assert window.history.rows[-1].method == "source"


def test_the_model_list_offers_the_shipped_models_then_the_recent_ones(qtbot, window):
    from tttgui.models.checkpoint import default_checkpoint_path, shipped_checkpoints

    combo = window.model_panel.recent
    shipped = shipped_checkpoints()
    assert shipped[0] == default_checkpoint_path() and all(p.suffix == ".pt" for p in shipped)
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts[:len(shipped)] == [f"{p.name} (shipped)" for p in shipped]
    assert texts[len(shipped)] == "" and texts[-1] == "small.pt"      # a separator, then what was opened
    with qtbot.waitSignal(window.model_panel.checkpoint_chosen, timeout=5000) as chosen:
        combo.activated.emit(0)
    assert chosen.args == [str(default_checkpoint_path())]
    qtbot.waitUntil(lambda: not window.loading, timeout=30000)
    assert window.model_info["path"] == str(default_checkpoint_path())
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts.count(f"{default_checkpoint_path().name} (shipped)") == 1 and "resnet26_gn_cifar10.pt" not in texts


def test_a_self_supervised_only_checkpoint_is_not_offered_and_not_loaded(qtbot, window, tmp_path, monkeypatch):
    """Its classifier is random: the window's list leaves it out and opening it says why, the model in use stays."""
    import shutil

    from tttgui.models import checkpoint as ck
    from tttgui.models import load_checkpoint, save_checkpoint

    model, payload = load_checkpoint(window.model_info["path"])
    res = tmp_path / "resources"
    res.mkdir()
    shutil.copy(window.model_info["path"], res / ck.DEFAULT_NAME)
    save_checkpoint(res / "ssl_only.pt", model, payload["classes"], payload.get("source_stats"),
                    {"finetune": "none"})
    monkeypatch.setattr(ck, "default_checkpoint_path", lambda: res / ck.DEFAULT_NAME)
    assert ck.shipped_checkpoints() == [res / ck.DEFAULT_NAME]
    name = window.model_info["path"]
    with qtbot.waitSignal(window.error, timeout=10000):
        window.load_checkpoint(str(res / "ssl_only.pt"))
    assert "classifier was never trained" in window.last_error and "\n" not in window.last_error
    assert window.model_info["path"] == name and window.step_action.isEnabled()


def test_a_run_stopped_by_a_switch_of_image_or_a_reset_reaches_history(qtbot, window):
    """Picking another image (or Reset) mid-run stops the run and starts the next episode at once; by the time the
    window handled the run's end the buffer held the next image, and the stopped run's History row was dropped
    (4-5 of 5 runs). The worker now hands the finished episode's records over with run_finished."""
    rows = []
    for k, leave in enumerate(("image", "image", "reset")):
        window.run_steps.setValue(100000)
        window.run()
        ep, index = window.episode.id, window.episode.index
        qtbot.waitUntil(lambda: window.controller.buffer.snapshot()[1] == ep
                        and len(window.controller.buffer.snapshot()[2]) >= 3, timeout=30000)
        n0 = len(window.history.rows)
        with qtbot.waitSignal(window.image_ready, timeout=30000):
            window.select_image((k + 1) % 6) if leave == "image" else window.reset()
        qtbot.waitUntil(lambda: not window.running, timeout=30000)
        assert len(window.history.rows) == n0 + 1, leave
        rows.append((window.history.rows[-1], index))
    for row, index in rows:
        assert row.status == "stopped" and row.steps >= 2 and row.index == index
