"""Issue 21, divergence: a non-finite loss, gradient, weight or logit restores the source weights, marks the
image "diverged" and counts it as an error; the vectorised path does the same per image; bad checkpoints say why."""
import copy
import csv
import math

import numpy as np
import pytest
import torch

from tttgui.errors import UserError
from tttgui.cell import Cell, predict_all, run_episodic as sequential_episodic
from tttgui.evaluation import EvalConfig, evaluate, run_record, write_result
from tttgui.methods import DIVERGED, Adapter, MethodConfig
from tttgui.methods.ttt import TTT
from tttgui.models import ModelSpec, build_model, load_checkpoint, save_checkpoint
from tttgui.results import table
from tttgui.vectorized import VectorizedEpisodic, run_episodic, seeds_for

from test_methods import image, tiny  # noqa: F401 (tiny: the small model fixture)

NAN = float("nan")


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(model, saved):
    return all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def nan_loss(m, b):
    return m.rotation_logits(b["views"]).sum() * NAN


def nan_grad(m, b):   # value 0, gradient inf * 0 = nan
    return (m.rotation_logits(b["views"]).sum() * 0).abs().sqrt()


@pytest.mark.parametrize("bad", [nan_loss, nan_grad], ids=["loss", "gradient"])
def test_non_finite_loss_or_gradient_restores_the_source_weights(tiny, bad):
    model, x = tiny[0], image(2, 3)
    model = copy.deepcopy(model)
    source = state(model)
    ad = Adapter(model, {}, MethodConfig("ttt", views=4, lr=0.1), "cpu")
    assert ad.update(x[:1]).status == "ok" and not same(model, source)   # one good step moved the weights
    ad.method.loss = bad
    assert ad.update(x[:1]).status == DIVERGED
    assert same(model, source)


def test_lr_1e30_diverges_and_restores_the_source_weights(tiny):
    model, x = tiny[0], image(2, 3)
    model = copy.deepcopy(model)
    source = state(model)
    ad = Adapter(model, {}, MethodConfig("ttt", views=4, lr=1e30), "cpu")
    statuses = [ad.update(x[:1]).status for _ in range(2)]   # huge but finite weights, then a nan loss
    assert statuses == ["ok", DIVERGED] and same(model, source)


def labelled_zero(n):
    """n uint8 images, all labelled 0: argmax over nan logits is 0, so a nan prediction would be a 'hit'."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), np.zeros(n, int), np.arange(n)


@pytest.mark.parametrize("protocol", ["episodic", "online"])
def test_nan_logits_are_diverged_errors_never_hits(tiny, monkeypatch, tmp_path, protocol):
    model = tiny[0]
    images, labels, indices = labelled_zero(3)
    source = state(model)
    cfg = EvalConfig(methods=("source", "ttt"), settings=MethodConfig(steps=1, views=4, protocol=protocol), chunk=1)
    adapted = []

    def predict(self, x):   # nan logits at prediction, after the adapted weights moved
        adapted.append(not same(self.model, source))
        return torch.full((len(x), self.model.spec.num_classes), NAN)

    monkeypatch.setattr(Adapter, "predict", predict)
    res = evaluate(model, {}, images, labels, indices, cfg, "cpu")
    rows = [r for r in res.images if r.method == "ttt"]
    assert any(adapted) and same(model, source)
    assert [r.status for r in rows] == [DIVERGED] * 3
    assert all(r.prediction_after == -1 and math.isnan(r.confidence_after) for r in rows)
    src, ttt = res.summary
    assert (src.diverged, ttt.diverged, ttt.error_after) == (0, 3, 100.0)
    assert table(res.summary).splitlines()[-1].split() == ["diverged", "(images)", "0", "3"]
    write_result(tmp_path, res, run_record(res, cfg, "test"))
    with open(tmp_path / "summary.csv", newline="") as f:
        assert [r["diverged"] for r in csv.DictReader(f)] == ["0", "3"]


def test_online_stream_goes_on_from_the_source_weights(tiny, monkeypatch):
    """The second of three batches diverges: its rows alone are marked, the weights go back to the source and
    the third batch adapts from there."""
    model = tiny[0]
    images, labels, indices = labelled_zero(3)
    source = state(model)
    calls, seen = [], []
    real = TTT.loss

    def loss(self, m, b):
        calls.append(1)
        seen.append(same(m, source))
        return real(self, m, b) * (NAN if len(calls) == 2 else 1.0)

    monkeypatch.setattr(TTT, "loss", loss)
    cfg = EvalConfig(methods=("ttt",), settings=MethodConfig(steps=1, views=4, protocol="online", lr=0.1))
    res = evaluate(model, {}, images, labels, indices, cfg, "cpu")
    assert [r.status for r in res.images] == ["ok", DIVERGED, "ok"]
    assert res.images[1].prediction_after == -1 and res.summary[0].diverged == 1
    assert seen == [True, False, True]   # batch 3 starts from the restored source weights


# -- the vectorised path ---------------------------------------------------------------------------------------
def bright_diverges_after_one_step(monkeypatch, model):
    """TTT's loss turns nan for a bright image (pixels 50) once its weights have moved: one good step, then a
    divergence, in both paths (in the vectorised one the probed weight is that image's copy)."""
    real, p0 = TTT.loss, model.trunk.conv1.weight.detach().clone()   # adapted by ttt

    def loss(self, m, b):
        bad = (b["views"].amax() > 10) & ((m.trunk.conv1.weight - p0).abs().sum() > 0)
        return real(self, m, b) * torch.where(bad, NAN, 1.0)

    monkeypatch.setattr(TTT, "loss", loss)


def test_vectorised_restores_and_marks_only_the_diverging_image(tiny, monkeypatch):
    model, x = tiny[0], image(2, 3)
    x = x.clone()
    x[1] = 50.0
    bright_diverges_after_one_step(monkeypatch, model)
    cfg = MethodConfig("ttt", steps=3, views=4, lr=0.05, seed=1)
    seeds = seeds_for(cfg.seed, range(3))
    with torch.no_grad():
        source_probs = model(x).softmax(-1).numpy()
    probs, losses, status = VectorizedEpisodic(model, {}, cfg, "cpu").run(x, seeds)
    assert status == ["ok", DIVERGED, "ok"]
    assert [len(v) for v in losses] == [3, 2, 3]
    assert np.abs(probs[1] - source_probs[1]).max() < 1e-5        # restored: the source prediction
    assert np.abs(probs[0] - source_probs[0]).max() > 1e-5        # the others adapted on


@pytest.mark.parametrize("case", ["inf input", "nan after a step", "lr 1e30"])
def test_vectorised_rows_equal_sequential_rows_for_diverging_images(tiny, monkeypatch, case):
    model, x = tiny[0], image(2, 3)
    x, lr = x.clone(), 0.05
    if case == "inf input":
        x[1] = float("inf")
    elif case == "lr 1e30":
        lr = 1e30
    else:
        x[1] = 50.0
        bright_diverges_after_one_step(monkeypatch, model)
    ad = Adapter(model, {}, MethodConfig("ttt", steps=2, views=4, lr=lr, seed=1), "cpu")
    labels, indices, order = np.zeros(3, int), np.arange(3), np.arange(3)
    cell = Cell(ad, x, labels, indices, order, predict_all(model, x, "cpu"), "none", 0, seed=1, chunk=3)
    want, got = sequential_episodic(cell), run_episodic(cell)
    key = lambda r: (r.index, r.status, r.prediction_after, r.steps)  # noqa: E731
    assert [key(r) for r in got] == [key(r) for r in want]
    assert any(r.status == DIVERGED for r in want)
    if case != "lr 1e30":
        assert [r.status for r in want] == ["ok", DIVERGED, "ok"]
    assert all(r.prediction_after == -1 for r in want if r.status == DIVERGED)


# -- checkpoints -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [NAN, float("inf")])
def test_checkpoint_with_non_finite_weights_is_refused(tmp_path, value):
    model = build_model(ModelSpec(arch_args={"depth": 8, "width": 1, "norm": "gn"}))
    with torch.no_grad():
        model.get_parameter("fc.weight")[0, 0] = value
    path = save_checkpoint(tmp_path / "bad.pt", model, [str(i) for i in range(10)])
    with pytest.raises(UserError, match=r"bad\.pt has non-finite weights: fc\.weight holds 1 nan/inf") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


class Foo:
    pass


@pytest.mark.parametrize("kind,cause", [
    ("text", "is not a zip/pickle file"), ("empty", "is empty"), ("truncated", "is truncated"),
    ("object", "contains non-tensor objects that are not allowed"),
])
def test_unreadable_checkpoint_names_the_cause(tmp_path, kind, cause):
    path = tmp_path / "x.pt"
    good = save_checkpoint(tmp_path / "ok.pt", build_model(ModelSpec(arch_args={"depth": 8, "width": 1})),
                           [str(i) for i in range(10)])
    if kind == "text":
        path.write_text("hello, not a checkpoint at all " * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:3000])
    else:
        torch.save({"format": "tttgui-checkpoint", "obj": Foo()}, path)
    with pytest.raises(UserError) as err:
        load_checkpoint(path)
    text = str(err.value)
    assert f"x.pt {cause}" in text and text.endswith("expected a file written by tttgui train")
    assert "\n" not in text and "miniz" not in text and "weights_only" not in text


# -- the GUI history -----------------------------------------------------------------------------------------
def record(step, pred, conf, status="ok"):
    from types import SimpleNamespace
    return SimpleNamespace(step=step, prediction=pred, confidence=conf, status=status, loss=None if not step else 1.0,
                           seconds=0.1)


@pytest.mark.parametrize("last,status", [(record(1, 0, 0.8, DIVERGED), DIVERGED), (record(1, 0, NAN), "done")],
                         ids=["diverged step", "nan probabilities"])
def test_history_row_of_a_divergence_is_never_correct(last, status):
    from tttgui.gui.history import build_row

    row = build_row(1, [record(0, 0, 0.9), last], ["airplane", "car"], image="x", index=0, label=0,
                    corruption="none", severity=0, config=MethodConfig("ttt"), status=status)
    assert (row.status, row.pred_after, row.correct_after, row.correct_before) == (DIVERGED, "", "no", "yes")
    assert math.isnan(row.conf_after)


def test_history_row_records_the_values_that_ran():
    """Issue 20, item 6: lr, optimizer, views and params are the resolved recipe's, never "default"."""
    from tttgui.gui.history import build_row

    rows = [record(0, 0, 0.9), record(1, 0, 0.8)]
    row = build_row(1, rows, ["airplane", "car"], image="x", index=0, label=0, corruption="none", severity=0,
                    config=MethodConfig("ttt"))
    assert (row.steps_config, row.lr, row.optimizer, row.views) == ("default", "0.001", "sgd", "32")
    assert row.params == "shared trunk + rotation head"
    row = build_row(1, rows, ["airplane", "car"], image="x", index=0, label=0, corruption="none", severity=0,
                    config=MethodConfig("ttt", lr=0.5, optimizer="adam", views=8, steps=3))
    assert (row.steps_config, row.lr, row.optimizer, row.views) == ("3", "0.5", "adam", "8")


def test_an_exception_without_a_message_still_gives_one_line():
    """str(exc).splitlines()[0] raised IndexError on an empty message, inside the paths that print one line."""
    from tttgui.errors import first_line
    from tttgui.gui.errors import one_line

    assert first_line(RuntimeError()) == "RuntimeError"
    assert first_line(RuntimeError("\n  first  \nsecond")) == "first"
    assert first_line(RuntimeError("alpha beta gamma"), 12) == "alpha beta …"
    assert one_line(OSError(), "resume failed") == "resume failed: OSError"


def test_resuming_from_a_state_that_raises_without_a_message_is_one_line(tmp_path, monkeypatch):
    import torch

    from tests.test_ssl import _cfg
    from tests.test_training import synthetic_folder
    from tttgui.errors import UserError
    from tttgui.training import Trainer

    data = synthetic_folder(tmp_path / "data", per_class=4)
    trainer = Trainer(_cfg(data, tmp_path / "m.pt", finetune="none"), log=lambda s: None)
    trainer.state_path().write_bytes(b"x")              # torch.load fails: the file itself is judged
    with pytest.raises(UserError, match=r"cannot resume: state file .* is not a zip/pickle file .*b'x'"):
        trainer.load_state()
    monkeypatch.setattr(torch, "load", lambda *a, **k: {"model": {}, "opt": {}})
    monkeypatch.setattr(trainer.model, "load_state_dict", lambda *a, **k: (_ for _ in ()).throw(RuntimeError()))
    with pytest.raises(UserError, match=r"cannot resume from .* \(RuntimeError\)"):
        trainer.load_state()
