"""The window's batch evaluation writes what `tttgui eval` writes, and says how many images diverged."""
import csv
import json
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
    panel = SimpleNamespace(last=res, config_run=cfg, window=window)
    assert BatchPanel.export(panel, tmp_path / "batch") is True, shown
    for name, columns in (("summary.csv", SUMMARY_COLUMNS), ("images.csv", IMAGE_COLUMNS)):
        with open(tmp_path / "batch" / name, newline="") as f:
            assert next(csv.reader(f)) == columns
    info = json.loads((tmp_path / "batch" / "run.json").read_text())
    assert info["command"] == "tttgui (window batch evaluation)" and info["versions"]["torch"]
    assert info["config"]["methods"] == ["ttt"] and info["config"]["steps"] == 1 and info["recipes"]["ttt"]
