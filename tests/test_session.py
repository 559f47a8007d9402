"""Sessions: immutable per-step records, exact resets, episodic vs online, stop and NaN handling."""
import dataclasses

import numpy as np
import pytest
import torch

from tttgui.errors import UserError
from tttgui.models import ModelSpec, build_model
from tttgui.results import ImageRow
from tttgui.session import LayerStat, MethodConfig, Session, StepRecord
from tttgui.stats import source_statistics


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = ModelSpec(heads=("rotation",), arch_args={"depth": 8, "width": 1, "norm": "gn"}, input_size=16)
    model = build_model(spec).eval()
    images = torch.randint(0, 256, (32, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    yield model, source_statistics(model, images, "cpu")
    torch.set_num_threads(threads)


def img(seed):
    return np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def session(tiny, method="ttt", **kw):
    model, stats = tiny
    kw.setdefault("views", 8)
    return Session(model, stats, MethodConfig(method, **kw), "cpu")


def test_records_hold_copied_diagnostics(tiny):
    s = session(tiny, steps=3)
    r0 = s.set_image(img(0), label=4, index=7)
    assert isinstance(r0, StepRecord) and r0.step == 0 and r0.loss is None and r0.status == "ok"
    records = list(s.run(3))
    assert [r.step for r in records] == [1, 2, 3]
    last = records[-1]
    assert last.probs.shape == (10,) and abs(last.probs.sum() - 1) < 1e-5
    assert last.prediction == int(last.probs.argmax()) and last.confidence == pytest.approx(last.probs.max())
    assert last.entropy > 0 and last.loss > 0 and last.grad_norm > 0 and last.seconds > 0
    assert last.uses_label and -1 <= last.grad_cosine <= 1 and last.label == 4
    names = [n for n, _ in s.model.norm_layers()]
    assert [layer.name for layer in last.layers] == names
    layer = last.layers[0]
    assert isinstance(layer, LayerStat) and layer.channel_mean.shape == layer.source_mean.shape
    assert layer.before_mean_dist == r0.layers[0].mean_dist and layer.mean_dist >= 0
    # copies: later steps and resets never change an emitted record
    probs, mean = last.probs.copy(), layer.channel_mean.copy()
    list(s.run(2))
    s.reset()
    assert np.array_equal(probs, last.probs) and np.array_equal(mean, layer.channel_mean)
    with pytest.raises(dataclasses.FrozenInstanceError):
        last.loss = 0.0
    res = s.result()
    assert isinstance(res, ImageRow) and res.steps == 0   # after reset: only step 0 of the same image


def test_without_label_nothing_uses_it(tiny):
    s = session(tiny)
    s.set_image(img(0))
    r = s.step()
    assert r.grad_cosine is None and not r.uses_label and r.correct is None


def test_result_summarises_the_run(tiny):
    s = session(tiny, steps=2)
    s.set_image(img(1), label=2, index=3)
    records = list(s.run(2))
    res = s.result()
    assert res.steps == 2 and res.loss_first == records[0].loss and res.loss_last == records[1].loss
    assert res.prediction_after == records[-1].prediction and res.label == 2 and res.index == 3
    assert res.correct_after == (records[-1].prediction == 2)


def test_reset_is_bit_exact_and_reruns_identically(tiny):
    s = session(tiny)
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    s.set_image(img(0), index=1)
    first = [r.loss for r in s.run(3)]
    s.reset()
    for k, v in s.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    again = [r.loss for r in s.run(3)]
    assert first == again


def test_session_does_not_touch_the_callers_model(tiny):
    model, _ = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = session(tiny)
    s.set_image(img(0))
    list(s.run(2))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_episodic_resets_and_online_carries(tiny):
    ep, on, ref = session(tiny, protocol="episodic"), session(tiny, protocol="online"), session(tiny)
    for s in (ep, on):
        s.set_image(img(0))
        list(s.run(2))
    fresh = ref.set_image(img(1))
    assert np.array_equal(ep.set_image(img(1)).probs, fresh.probs)
    assert not np.array_equal(on.set_image(img(1)).probs, fresh.probs)


def test_run_checks_should_stop_between_steps(tiny):
    s = session(tiny)
    s.set_image(img(0))
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2
    assert len(list(s.run(100, should_stop=stop))) == 2


def test_nan_stops_the_run_and_keeps_the_model(tiny):
    s = session(tiny)
    s.set_image(img(0))
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    s.adapter.method.loss = lambda m, b: m.rotation_logits(b["views"]).sum() * float("inf") * 0
    records = list(s.run(5))
    assert len(records) == 1 and records[0].status == "diverged"
    assert s.result().status == "diverged"
    for k, v in s.model.state_dict().items():
        assert torch.equal(v, before[k])


def test_views_are_images_and_do_not_change_the_run(tiny):
    a, b = session(tiny), session(tiny)
    a.set_image(img(0))
    b.set_image(img(0))
    v = a.views(5)
    assert v.shape == (5, 16, 16, 3) and v.dtype == np.uint8
    assert a.step().loss == b.step().loss


def test_step_works_under_no_grad_from_another_thread(tiny):
    import threading
    s = session(tiny)
    s.set_image(img(0))
    out = []

    def work():
        with torch.no_grad():
            out.append(s.step())
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert out[0].status == "ok" and out[0].grad_norm > 0


def test_bad_image_and_no_image_are_user_errors(tiny):
    s = session(tiny)
    with pytest.raises(UserError):
        s.step()
    with pytest.raises(UserError):
        s.set_image(np.zeros((16, 16), dtype=np.uint8))
    r = s.set_image(np.zeros((40, 30, 3), dtype=np.uint8))   # other sizes are resized to the model's input
    assert r.probs.shape == (10,)


def test_source_session_never_changes(tiny):
    s = session(tiny, method="source")
    r0 = s.set_image(img(0), label=1)
    r1 = s.step()
    assert r1.loss is None and np.array_equal(r0.probs, r1.probs) and r1.status == "ok"


def test_a_diverged_step_is_never_correct(tiny):
    """The restored source weights may predict the label, but a diverged step or image is no hit."""
    s = session(tiny)
    label = s.set_image(img(0)).prediction   # the source model's own prediction: a "hit" before adapting
    s.set_image(img(0), label=label)
    s.adapter.method.loss = lambda m, b: m.rotation_logits(b["views"]).sum() * float("nan")
    record = s.step()
    assert record.status == "diverged" and record.prediction == label and record.correct is False
    res = s.result()
    assert res.status == "diverged" and res.correct_after is False and res.prediction_after == -1
    assert res.correct_before is True


def test_non_finite_logits_are_a_divergence(tiny, monkeypatch):
    """A finite loss and finite weights, but logits that overflow: the step is diverged, weights restored."""
    s = session(tiny, lr=0.1)
    s.set_image(img(0), label=1)
    source = {k: v.clone() for k, v in s.model.state_dict().items()}
    real = s.model.forward
    monkeypatch.setattr(s.model, "forward", lambda x: real(x) * float("inf"))
    record = s.step()
    assert record.status == "diverged" and record.correct is False
    assert all(torch.equal(v, source[k]) for k, v in s.model.state_dict().items())
    assert s.result().status == "diverged"


def test_a_step_copies_its_statistics_to_the_host_once(tiny, monkeypatch):
    """Probabilities, entropy and every norm layer's moments leave the device in one copy (on a GPU each
    copy is a synchronisation: there were about 65 a step)."""
    s = session(tiny)
    s.set_image(img(0), label=1)
    copies = []
    real_cpu, real_numpy = torch.Tensor.cpu, torch.Tensor.numpy
    monkeypatch.setattr(torch.Tensor, "cpu", lambda t, *a, **k: copies.append("cpu") or real_cpu(t, *a, **k))
    monkeypatch.setattr(torch.Tensor, "numpy", lambda t, *a, **k: copies.append("numpy") or real_numpy(t, *a, **k))
    record = s._observe(1, 0.5, None, None, "ok", 0.0)
    monkeypatch.undo()
    assert copies.count("cpu") == 1 and len(record.layers) > 3
    assert record.probs.sum() == pytest.approx(1.0) and np.isfinite(record.entropy)
