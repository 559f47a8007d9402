"""The offline (TTT++) and continual (CoTTA / Han et al. 2025) protocols of the evaluation engine."""
import json

import numpy as np
import pytest
import torch

import tttgui.evaluation as ev
from test_eval import no_work, read, run_cli, setup  # noqa: F401 (setup: the tiny checkpoint and data)
from tttgui.evaluation import EvalConfig, evaluate
from tttgui.methods import Adapter, MethodConfig, method_names


def record_calls(monkeypatch):
    """Adapter.observe/update calls in order, with the images and the weights around each update."""
    calls = []
    real_observe, real_update = Adapter.observe, Adapter.update

    def observe(self, images):
        calls.append(("observe", images.clone(), None, None))
        return real_observe(self, images)

    def update(self, images, *a, **k):
        before = [p.detach().clone() for p in self.params]
        out = real_update(self, images, *a, **k)
        calls.append(("update", images.clone(), before, [p.detach().clone() for p in self.params]))
        return out
    monkeypatch.setattr(Adapter, "observe", observe)
    monkeypatch.setattr(Adapter, "update", update)
    return calls


def images6():
    return np.random.default_rng(5).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)


def test_offline_runs_fixed_epochs_forward_only_first_and_predicts_in_a_final_pass(setup, monkeypatch):
    _, model, stats = setup
    calls = record_calls(monkeypatch)
    predicted = []
    real_predict = Adapter.predict

    def predict(self, images):
        predicted.append([p.detach().clone() for p in self.params])
        return real_predict(self, images)
    monkeypatch.setattr(Adapter, "predict", predict)
    cfg = EvalConfig(methods=("ttt++",), settings=MethodConfig(protocol="offline", seed=1), epochs=4,
                     batch_size=2)
    res = evaluate(model, stats, images6(), np.array([0, 1, 2, 0, 1, 2]), np.arange(6), cfg, "cpu")
    # 2 forward-only epochs (3 batches each), then 2 epochs of steps: nothing else, no early stop
    assert [c[0] for c in calls] == ["observe"] * 6 + ["update"] * 6
    epoch_sets = [sorted(tuple(sorted(c[1].sum((1, 2, 3)).tolist())) for c in calls[e * 3:e * 3 + 3])
                  for e in range(4)]
    assert epoch_sets[0] != epoch_sets[1] or epoch_sets[1] != epoch_sets[2]   # reshuffled per epoch
    for a, b in zip(calls[6:], calls[7:]):   # never reset within the cell
        assert all(torch.equal(x, y) for x, y in zip(a[3], b[2]))
    final = calls[-1][3]
    assert predicted and all(all(torch.equal(x, y) for x, y in zip(p, final)) for p in predicted)
    assert len(res.images) == 6 and {r.protocol for r in res.images} == {"offline"}
    assert {r.steps for r in res.images} == {2} and [r.index for r in res.images] == list(range(6))
    # the rows are the final pass's predictions: the model with the last weights, on the un-augmented images
    adapted = Adapter(model, stats, MethodConfig("ttt++", protocol="offline"), "cpu")
    with torch.no_grad():
        for p, w in zip(adapted.params, final):
            p.copy_(w)
        x = torch.from_numpy(images6()).permute(0, 3, 1, 2).float() / 255
        expected = model(x).argmax(1).tolist()
        adapted.reset()
    assert [r.prediction_after for r in res.images] == expected
    assert res.recipes["ttt++"]["batch_size"] == 2 and res.recipes["ttt++"]["outputs"] == "after"


def test_offline_from_the_cli_records_epochs_and_the_methods_batch(setup, tmp_path):
    root, _, _ = setup
    assert run_cli(root, tmp_path / "o", "--protocol", "offline", "--methods", "source,ttt++", "--epochs", "3",
                   "--steps", "1") == 0
    info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert info["config"]["protocol"] == "offline" and info["config"]["epochs"] == 3
    assert info["config"]["forward_only_epochs"] == 2 and info["recipes"]["ttt++"]["batch_size"] == 256
    summary = read(tmp_path / "o" / "summary.csv")
    assert [(r["method"], r["protocol"]) for r in summary] == [("source", "offline"), ("ttt++", "offline")]
    assert {r["steps"] for r in read(tmp_path / "o" / "images.csv") if r["method"] == "ttt++"} == {"1"}
    assert "ttt++" in method_names("offline") and "aws" in method_names("continual")


@pytest.mark.parametrize("extra, needle", [
    (["--protocol", "offline", "--epochs", "2", "--methods", "ttt++"], "forward-only"),
    (["--protocol", "online", "--epochs", "3"], "--epochs is for --protocol offline"),
    (["--protocol", "offline", "--methods", "ttt"], "no batch size of its own"),
    (["--protocol", "continual", "--corruptions", "fog", "--severities", "4,5"], "one severity"),
    (["--protocol", "continual"], "not clean images"),
    (["--protocol", "episodic", "--methods", "aws"], "expected --protocol online, continual or offline")])
def test_bad_protocol_combinations_are_one_line_before_any_work(setup, tmp_path, capsys, monkeypatch, extra,
                                                                needle):
    root, _, _ = setup
    calls = no_work(monkeypatch)
    assert run_cli(root, tmp_path / "x", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and needle in err and "expected" in err, err
    assert not calls and not (tmp_path / "x").exists()


def fake_corruptions(monkeypatch):
    shift = {"gaussian_noise": 40, "shot_noise": 90}
    monkeypatch.setattr(ev, "corrupt_images", lambda images, c, s, cfg, d: (images // 2 + shift[c]).astype(np.uint8))


def run_protocol(model, stats, protocol):
    cfg = EvalConfig(corruptions=("shot_noise", "gaussian_noise"), methods=("tent",), batch_size=2,
                     settings=MethodConfig(protocol=protocol, steps=1, seed=2))
    return evaluate(model, stats, images6(), np.array([0, 1, 2, 0, 1, 2]), np.arange(6), cfg, "cpu")


def test_continual_stream_never_resets_and_follows_the_papers_order(setup, monkeypatch):
    _, model, stats = setup
    fake_corruptions(monkeypatch)
    source = [p.detach().clone() for p in Adapter(model, stats, MethodConfig("tent"), "cpu").params]
    online_calls = record_calls(monkeypatch)
    online = run_protocol(model, stats, "online")
    monkeypatch.undo()
    fake_corruptions(monkeypatch)
    calls = record_calls(monkeypatch)
    res = run_protocol(model, stats, "continual")
    assert [c[0] for c in calls] == ["update"] * 6
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a, b))  # noqa: E731
    assert same(calls[0][2], source)
    for a, b in zip(calls, calls[1:]):   # the weights after each batch are the next one's start: no reset
        assert same(a[3], b[2])
    # online resets at its second cell; the stream carries the weights of the first corruption into the second
    assert same(online_calls[3][2], source) and not same(calls[3][2], source)
    # gaussian noise first, though --corruptions listed shot noise first: the same batches as online's gaussian cell
    online_by_images = {c[1].sum().item() for c in online_calls if c[0] == "update"}
    assert [c[1].sum().item() for c in calls] == [c[1].sum().item() for c in online_calls[3:] + online_calls[:3]]
    assert len(online_by_images) == 6
    assert [r.corruption for r in res.summary] == ["gaussian_noise", "shot_noise"]
    assert {r.protocol for r in res.images} == {"continual"}
    gauss = lambda rows: [(r.index, r.prediction_after) for r in rows if r.corruption == "gaussian_noise"]  # noqa
    assert gauss(res.images) == gauss(online.images)


def test_aws_runs_continual_from_the_cli_and_a_stopped_stream_resumes_to_the_same_files(setup, tmp_path,
                                                                                       monkeypatch, capsys):
    import tttgui.protocols as protocols
    root, _, _ = setup
    args = ("--protocol", "continual", "--methods", "source,aws", "--corruptions", "shot_noise,gaussian_noise",
            "--batch-size", "3", "--lr", "4.6875e-05", "--steps", "1")     # the paper's lr rule at batch 3
    assert run_cli(root, tmp_path / "full", *args) == 0
    summary = read(tmp_path / "full" / "summary.csv")
    assert [(r["corruption"], r["method"]) for r in summary] == [
        ("gaussian_noise", "source"), ("gaussian_noise", "aws"), ("shot_noise", "source"), ("shot_noise", "aws")]
    info = json.loads((tmp_path / "full" / "run.json").read_text())
    assert info["config"]["corruptions"] == ["gaussian_noise", "shot_noise"] and info["config"]["batch_size"] == 3
    assert info["recipes"]["aws"]["outputs"] == "before" and info["recipes"]["aws"]["protocol"] == "continual"

    segments, real = [], protocols.run_segment

    def stop_in_the_second_corruption(cell):
        segments.append(cell.name)
        if cell.adapter.recipe.method == "aws" and cell.corruption == "shot_noise":
            raise KeyboardInterrupt
        return real(cell)
    monkeypatch.setattr(protocols, "run_segment", stop_in_the_second_corruption)
    out = tmp_path / "run"
    assert run_cli(root, out, *args) == 130
    assert len(list((out / "cells").glob("*.csv"))) == 3
    monkeypatch.setattr(protocols, "run_segment", real)
    capsys.readouterr()
    assert run_cli(root, out, *args, "--resume") == 0
    assert "restarts from its first corruption" in capsys.readouterr().err
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read(out / "images.csv")) == strip(read(tmp_path / "full" / "images.csv"))
    assert read(out / "summary.csv") == read(tmp_path / "full" / "summary.csv")


def test_online_defaults_to_each_methods_paper_batch_and_records_it(setup, monkeypatch):
    """Without --batch-size, online streams use the method's own batch (tent 200, actmad 128, ttt++ 256, aws 16;
    TTT-Online one image), recorded per method; --batch-size overrides them all."""
    from tttgui.methods import get_method
    _, model, stats = setup
    assert [get_method(m).batch_size or 1 for m in ("tent", "actmad", "ttt++", "aws", "ttt", "memo")] == \
        [200, 128, 256, 16, 1, 1]
    calls = record_calls(monkeypatch)
    cfg = EvalConfig(methods=("tent", "ttt"), settings=MethodConfig(protocol="online", seed=1))
    res = evaluate(model, stats, images6(), np.array([0, 1, 2, 0, 1, 2]), np.arange(6), cfg, "cpu")
    assert [len(c[1]) for c in calls] == [6] + [1] * 6          # tent: all 6 in one batch (of up to 200)
    assert res.recipes["tent"]["batch_size"] == 200 and res.recipes["ttt"]["batch_size"] == 1
    assert cfg.to_dict()["batch_size"] is None
    calls.clear()
    cfg = EvalConfig(methods=("tent",), settings=MethodConfig(protocol="online", seed=1), batch_size=4)
    res = evaluate(model, stats, images6(), np.array([0, 1, 2, 0, 1, 2]), np.arange(6), cfg, "cpu")
    assert [len(c[1]) for c in calls] == [4, 2] and res.recipes["tent"]["batch_size"] == 4
