"""The window's batch evaluation writes what `tttgui eval` writes, and says how many images diverged."""
import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tttgui.evaluation import EvalConfig, evaluate
from tttgui.methods import MethodConfig
from tttgui.models import ModelSpec, build_model
from tttgui.results import IMAGE_COLUMNS, SUMMARY_COLUMNS, SummaryRow


@pytest.fixture(scope="module")
def result():
    torch.manual_seed(0)
    model = build_model(ModelSpec(num_classes=3, heads=("rotation",), input_size=16,
                                  arch_args={"depth": 8, "width": 1, "norm": "gn"})).eval()
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    cfg = EvalConfig(methods=("ttt",), settings=MethodConfig(steps=1, views=4))
    return evaluate(model, {}, images, np.array([0, 1, 2]), np.arange(3), cfg, "cpu"), cfg


def test_summary_line_shows_diverged_and_unlabelled():
    from tttgui.gui.batch import summary_line

    text = summary_line(SummaryRow("fog", 5, "ttt", "episodic", 10, 20.0, 30.0, 2))
    assert "20.0%" in text and "30.0%" in text and "diverged 2" in text
    assert "n/a" in summary_line(SummaryRow("fog", 5, "ttt", "episodic", 10, None, None, 0))


def test_batch_export_writes_the_eval_files(result, tmp_path):
    from tttgui.gui.batch import BatchPanel

    res, cfg = result
    shown = []
    window = SimpleNamespace(model_info={"path": "ck.pt"}, dataset=None, report=shown.append,
                             device_label=SimpleNamespace(text=lambda: "cpu"),
                             statusBar=lambda: SimpleNamespace(showMessage=lambda *a: shown.append(a[0])))
    panel = SimpleNamespace(last=res, window=window, skipped=[],
                            shown={"cfg": cfg, "checkpoint": "ck.pt", "data": None, "device": "cpu"})
    assert BatchPanel.export(panel, tmp_path / "batch") is True, shown
    for name, columns in (("summary.csv", SUMMARY_COLUMNS), ("images.csv", IMAGE_COLUMNS)):
        with open(tmp_path / "batch" / name, newline="") as f:
            assert next(csv.reader(f)) == columns
    info = json.loads((tmp_path / "batch" / "run.json").read_text())
    assert info["command"] == "tttgui (window batch evaluation)" and info["versions"]["torch"]
    assert info["config"]["methods"] == ["ttt"] and info["config"]["steps"] == 1 and info["recipes"]["ttt"]


def test_a_write_that_fails_half_way_leaves_no_run_json_describing_other_tables(result, tmp_path, monkeypatch):
    import tttgui.results as results_mod

    res, cfg = result
    out = tmp_path / "run"
    results_mod.write_outputs(out, res.summary, res.images, {"run": 1})
    real = results_mod.write_csv

    def full_disk(path, columns, rows):
        if Path(path).name == "images.csv":
            raise OSError(28, "No space left on device")
        return real(path, columns, rows)
    monkeypatch.setattr(results_mod, "write_csv", full_disk)
    with pytest.raises(OSError):
        results_mod.write_outputs(out, res.summary, res.images, {"run": 2})
    assert not (out / "run.json").exists()       # the old one described the old tables; the new one never came


def test_batch_on_a_release_block_is_not_corrupted_again(qapp, tmp_path, monkeypatch):
    """The window's batch evaluation of a CIFAR-10-C release: the chosen severity's rows, as they are."""
    import threading

    import tttgui.evaluation as ev
    from tttgui.data.corrupted import CorruptionDataset
    from tttgui.gui.batch import batch_dataset
    from tttgui.gui.worker import RecordBuffer, SessionWorker

    torch.manual_seed(0)
    model = build_model(ModelSpec(num_classes=3, heads=("rotation",), input_size=16,
                                  arch_args={"depth": 8, "width": 1, "norm": "gn"})).eval()
    rng = np.random.default_rng(0)
    np.save(tmp_path / "fog.npy", rng.integers(0, 256, (5 * 4, 16, 16, 3), dtype=np.uint8))
    np.save(tmp_path / "labels.npy", np.tile([0, 1, 2, 0], 5))
    whole = CorruptionDataset(tmp_path, "fog", classes=["a", "b", "c"])
    block = batch_dataset(whole, 3)
    assert (block.corruption, block.severity, len(block)) == ("fog", 3, 4)
    cfg = EvalConfig(corruptions=("fog",), severities=(3,), methods=("ttt",),
                     settings=MethodConfig("ttt", steps=1, views=4))
    monkeypatch.setattr(ev, "corrupt_images", lambda *a: pytest.fail("a release was corrupted again"))
    worker = SessionWorker(RecordBuffer(), threading.Event(), threading.Event())
    worker.model, worker.source_stats, worker.device = model, {}, torch.device("cpu")
    got, failed = [], []
    worker.batch_done.connect(got.append)
    worker.failed.connect(failed.append)
    worker.evaluate(block, [0, 1, 2, 3], cfg)
    assert not failed and got[0] is not None
    want = evaluate(model, {}, None, np.array([0, 1, 2, 0]), np.arange(4), cfg, "cpu",
                    shifted=lambda c, s: np.load(tmp_path / "fog.npy")[8:12])
    key = lambda r: (r.corruption, r.severity, r.index, r.prediction_before, r.prediction_after)  # noqa: E731
    assert [key(r) for r in got[0].result.images] == [key(r) for r in want.images]
