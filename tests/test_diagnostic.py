"""The TTT paper's per-image diagnostic: gradient cosine at the first step and decrease of the true class's loss."""
import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tttgui.augment import to_float
from tttgui.cli import main
from tttgui.errors import UserError
from tttgui.evaluation import EvalConfig, evaluate
from tttgui.methods import Adapter, MethodConfig, image_seed
from tttgui.models import ModelSpec, build_model, save_checkpoint
from tttgui.results import IMAGE_COLUMNS, diagnostic, read_rows, write_csv
from tttgui.stats import source_statistics


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    spec = ModelSpec(num_classes=3, heads=("rotation",), arch_args={"depth": 8, "width": 1, "norm": "gn"},
                     input_size=16)
    model = build_model(spec).eval()
    stats = source_statistics(model, torch.from_numpy(rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)), "cpu")
    images = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, -1, 1])
    return model, stats, images, labels


def run(setup, diagnose, methods=("source", "ttt"), chunk=1):
    model, stats, images, labels = setup
    cfg = EvalConfig(corruptions=("none",), methods=methods, chunk=chunk, diagnose=diagnose,
                     settings=MethodConfig(steps=2, views=4, seed=3))
    return evaluate(model, stats, images, labels, np.arange(len(labels)), cfg, "cpu")


def test_diagnostic_never_changes_the_result(setup):
    plain, diag = run(setup, False), run(setup, True)
    key = lambda r: (r.method, r.index, r.prediction_after, round(r.confidence_after, 6), r.loss_first, r.loss_last)  # noqa: E731
    assert [key(r) for r in plain.images] == [key(r) for r in diag.images]
    assert all(r.grad_cosine is None and r.loss_decrease is None for r in plain.images)
    ttt = [r for r in diag.images if r.method == "ttt"]
    assert [r.grad_cosine is not None for r in ttt] == [True, True, True, False, True]   # image 3 has no label
    assert all(-1 <= r.grad_cosine <= 1 for r in ttt if r.labeled)
    assert all(r.grad_cosine is None for r in diag.images if r.method == "source")
    # a chunk above 1 would run the vectorised path, which records no diagnostic: the sequential loop runs instead
    assert [r.grad_cosine for r in run(setup, True, ("ttt",), chunk=4).images] == [r.grad_cosine for r in ttt]


def test_diagnostic_numbers_match_a_hand_computation(setup):
    """Cosine of the rotation and cross-entropy gradients on the trunk at the source weights for the views the
    first step draws; loss decrease = CE(source) − CE(after the steps), both of the true class."""
    model, stats, images, labels = setup
    row = [r for r in run(setup, True, ("ttt",)).images if r.index == 1][0]
    x = to_float(torch.from_numpy(images[1:2].copy()))
    y = torch.tensor([1])
    ad = Adapter(model, stats, MethodConfig(method="ttt", steps=2, views=4, seed=3), "cpu")
    ad.reset()
    ad.seed(image_seed(3, 1))
    trunk = list(model.parameter_groups()["trunk"])
    with torch.enable_grad():
        batch = ad.method.draw(x, ad.gen)
        with ad.method.train_mode(model):
            g_ssl = torch.autograd.grad(ad.method.loss(model, batch), trunk, allow_unused=True)
        g_ce = torch.autograd.grad(F.cross_entropy(model(x), y), trunk, allow_unused=True)
    pairs = [(a.flatten(), b.flatten()) for a, b in zip(g_ssl, g_ce) if a is not None and b is not None]
    a, b = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    assert row.grad_cosine == pytest.approx(float(a @ b / (a.norm() * b.norm())), abs=1e-5)

    with torch.no_grad():
        ce_before = float(F.cross_entropy(model(x), y))
    ad.reset()
    ad.seed(image_seed(3, 1))
    for _ in range(2):
        ad.update(x)
    with torch.no_grad():
        ce_after = float(F.cross_entropy(ad.predict(x), y))
    ad.reset()
    assert row.loss_decrease == pytest.approx(ce_before - ce_after, abs=1e-5)
    assert row.loss_decrease != 0


def test_diagnostic_is_episodic_only(setup):
    model, stats, images, labels = setup
    cfg = EvalConfig(corruptions=("none",), methods=("ttt",), diagnose=True,
                     settings=MethodConfig(protocol="online", steps=1))
    with pytest.raises(UserError, match="episodic"):
        evaluate(model, stats, images, labels, np.arange(5), cfg, "cpu")


def test_diagnose_keeps_old_resume_fingerprints():
    assert "diagnose" not in EvalConfig().to_dict()
    assert EvalConfig(diagnose=True).to_dict()["diagnose"] is True


def test_rows_round_trip_and_old_files_read(setup, tmp_path):
    rows = run(setup, True, ("ttt",)).images
    write_csv(tmp_path / "new.csv", IMAGE_COLUMNS, rows)
    back = read_rows(tmp_path / "new.csv")
    assert [r.grad_cosine is None for r in back] == [False, False, False, True, False]   # image 3: no label
    for a, b in zip(back, rows):
        if b.grad_cosine is not None:   # written with 6 significant digits
            assert math.isclose(a.grad_cosine, b.grad_cosine, rel_tol=1e-5)
            assert math.isclose(a.loss_decrease, b.loss_decrease, rel_tol=1e-5, abs_tol=1e-6)
    old = [c for c in IMAGE_COLUMNS if c not in ("grad_cosine", "loss_decrease")]   # a file from before
    write_csv(tmp_path / "old.csv", old, rows)
    assert [r.grad_cosine for r in read_rows(tmp_path / "old.csv")] == [None] * len(rows)


def test_correlation_of_the_diagnostic():
    from tttgui.results import ImageRow

    def row(c, d):
        return ImageRow("none", 0, "ttt", "episodic", 0, 1, 0, .5, 0, .5, None, None, 1, 0.0, "ok", c, d)
    x, y, r = diagnostic([row(0.1, 0.2), row(0.2, 0.4), row(0.3, 0.6), row(None, None), row(0.4, float("nan"))])
    assert list(x) == [0.1, 0.2, 0.3] and r == pytest.approx(1.0)
    assert math.isnan(diagnostic([row(0.1, 0.2), row(0.2, 0.1)])[2])   # too few points for a correlation


def test_eval_cli_writes_the_diagnostic(setup, tmp_path):
    model, stats, images, _ = setup
    from PIL import Image

    for c in ("a", "b", "c"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(images[i]).save(tmp_path / "data" / c / f"{i}.png")
    save_checkpoint(tmp_path / "ck.pt", model, ["a", "b", "c"], stats, {"clean_error": 50.0})
    assert main(["eval", "--device", "cpu", "--checkpoint", str(tmp_path / "ck.pt"), "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "out"), "--corruptions", "none", "--methods", "ttt", "--steps", "1",
                 "--views", "2", "--diagnose", "--no-progress"]) == 0
    with open(tmp_path / "out" / "images.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(-1 <= float(r["grad_cosine"]) <= 1 and r["loss_decrease"] for r in rows)
