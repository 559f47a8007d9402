"""`tttgui eval` and the evaluation engine: output schemas, determinism, protocols, errors."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tttgui.cli import main
from tttgui.evaluation import EvalConfig, evaluate
from tttgui.methods import MethodConfig
from tttgui.models import ModelSpec, build_model, save_checkpoint
from tttgui.results import IMAGE_COLUMNS, SUMMARY_COLUMNS
from tttgui.stats import source_statistics

CLASSES = ["cat", "dog", "ship"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (root / "data" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / "data" / c / f"{i}.png")
    torch.manual_seed(0)
    spec = ModelSpec(num_classes=3, heads=("rotation",), arch_args={"depth": 8, "width": 1, "norm": "gn"},
                     input_size=16)
    model = build_model(spec).eval()
    stats = source_statistics(model, torch.from_numpy(rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)), "cpu")
    save_checkpoint(root / "ck.pt", model, CLASSES, stats, {"clean_error": 50.0})
    yield root, model, stats
    torch.set_num_threads(threads)


def run_cli(root, out, *extra):
    return main(["eval", "--device", "cpu",
                 "--checkpoint", str(root / "ck.pt"), "--data", str(root / "data"), "--out", str(out),
                 "--corruptions", "none", "--methods", "source,ttt,tent", "--steps", "2", "--views", "4",
                 "--no-progress", *extra])


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_eval_writes_documented_outputs(setup, tmp_path, capsys):
    root, _, _ = setup
    assert run_cli(root, tmp_path / "a") == 0
    printed = capsys.readouterr().out
    assert "no adapt" in printed and "ttt" in printed
    assert "methods: tent = Tent (GN affine)" in printed    # the table's registry names, as this model runs them
    with open(tmp_path / "a" / "summary.csv") as f:
        assert f.readline().strip() == ",".join(SUMMARY_COLUMNS)
    summary = read(tmp_path / "a" / "summary.csv")
    assert [r["method"] for r in summary] == ["source", "ttt", "tent"]
    for r in summary:
        assert r["n"] == "6" and r["protocol"] == "episodic" and 0 <= float(r["error_after"]) <= 100
    src = summary[0]
    assert src["error_before"] == src["error_after"]
    images = read(tmp_path / "a" / "images.csv")
    assert list(images[0]) == IMAGE_COLUMNS and len(images) == 18
    ttt = [r for r in images if r["method"] == "ttt"]
    assert all(r["steps"] == "2" and float(r["loss_first"]) > 0 and r["loss_last"] for r in ttt)
    assert sorted(int(r["index"]) for r in ttt) == list(range(6))
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    for key in ("config", "versions", "device", "seed", "recipes", "checkpoint", "indices"):
        assert key in info
    assert info["versions"]["torch"] and info["recipes"]["ttt"]["steps"] == 2
    assert info["recipes"]["ttt"]["lr"] == 1e-3 and info["recipes"]["tent"]["optimizer"] == "adam"


def test_same_seed_same_numbers(setup, tmp_path):
    root, _, _ = setup
    for name in ("a", "b"):
        assert run_cli(root, tmp_path / name, "--seed", "3", "--methods", "ttt") == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read(tmp_path / "a" / "images.csv")) == strip(read(tmp_path / "b" / "images.csv"))
    assert read(tmp_path / "a" / "summary.csv") == read(tmp_path / "b" / "summary.csv")


def test_online_protocol_batches_the_stream(setup, tmp_path):
    root, _, _ = setup
    assert run_cli(root, tmp_path / "o", "--protocol", "online", "--batch-size", "2", "--steps", "1",
                   "--limit", "4") == 0
    images = read(tmp_path / "o" / "images.csv")
    assert len(images) == 12 and {r["protocol"] for r in images} == {"online"}
    assert {r["steps"] for r in images if r["method"] == "ttt"} == {"1"}


def test_bad_options_are_one_line_errors(setup, tmp_path, capsys):
    root, _, _ = setup
    for extra in (["--methods", "magic"], ["--severities", "7", "--corruptions", "fog"],
                  ["--batch-size", "0"], ["--limit", "0"]):
        assert run_cli(root, tmp_path / "x", *extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "error" in err
    assert main(["eval", "--checkpoint", str(tmp_path / "nope.pt"), "--data", str(root / "data"),
                 "--out", str(tmp_path / "y"), "--corruptions", "none"]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_engine_loops_over_shifts_and_restores_the_model(setup, monkeypatch):
    root, model, stats = setup
    import tttgui.evaluation as ev
    monkeypatch.setattr(ev, "check_config", lambda cfg, m, **k: None)
    monkeypatch.setattr(ev, "corrupt_images", lambda images, c, s, cfg, d: (255 - images) // s)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    cfg = EvalConfig(corruptions=("none", "fake"), severities=(1, 2), methods=("source", "ttt"),
                     settings=MethodConfig(steps=1, views=4))
    seen = []
    res = evaluate(model, stats, images, np.array([0, 1, 2]), np.array([5, 6, 7]), cfg, "cpu",
                   progress=lambda k, text: seen.append(k))
    assert [(r.corruption, r.severity, r.method) for r in res.summary] == [
        ("none", 0, "source"), ("none", 0, "ttt"), ("fake", 1, "source"), ("fake", 1, "ttt"),
        ("fake", 2, "source"), ("fake", 2, "ttt")]
    assert sum(seen) == 18 and {r.index for r in res.images} == {5, 6, 7}
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_should_stop_cancels_with_partial_results(setup):
    _, model, stats = setup
    images = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    calls = []
    res = evaluate(model, stats, images, np.zeros(4, int), np.arange(4), EvalConfig(methods=("ttt",),
                   settings=MethodConfig(steps=1, views=4)), "cpu", should_stop=lambda: len(calls.append(1) or calls) > 2)
    assert res.cancelled and 0 < len(res.images) < 4


def test_paired_difference_of_two_methods():
    from tttgui.results import ImageRow, paired_difference

    def rows(preds):
        return [ImageRow("none", 0, "m", "episodic", i, 1, 0, 0.5, p, 0.5, None, None, 0, 0.0, "ok")
                for i, p in enumerate(preds)]
    diff, low, high, n = paired_difference(rows([0, 0, 1, 1]), rows([1, 1, 1, 0]))
    assert n == 4 and diff == pytest.approx(-25.0) and low < diff < high


def test_an_image_under_several_corruptions_is_one_cluster_of_the_interval():
    """The same 4 images under two corruptions with the same outcomes carry no more information than one corruption:
    the interval must not shrink by sqrt(2) (pooling them as 8 independent pairs did). d = (1, 1, 0, 0): mean 50 pp,
    s = 0.577, half-width 1.96 * 0.577 / 2 = 56.6 pp; with one image a group it is the plain s / sqrt(n)."""
    import numpy as np

    from tttgui.results import ImageRow, mean_interval, paired_difference

    def rows(corruption, preds):
        return [ImageRow(corruption, 5, "m", "episodic", i, 1, 0, 0.5, p, 0.5, None, None, 0, 0.0, "ok")
                for i, p in enumerate(preds)]
    a = rows("fog", [1, 1, 1, 1]) + rows("snow", [1, 1, 1, 1])
    b = rows("fog", [0, 0, 1, 1]) + rows("snow", [0, 0, 1, 1])
    one = paired_difference(a[:4], b[:4])
    two = paired_difference(a, b)
    assert one[:3] == pytest.approx((50.0, 50.0 - 56.58, 50.0 + 56.58), abs=0.01)
    assert two[:3] == pytest.approx(one[:3]) and two[3] == 8
    d = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    m, lo, hi = mean_interval(d)
    assert hi - m == pytest.approx(1.96 * d.std(ddof=1) / np.sqrt(5))


def test_session_and_eval_agree_on_an_image(setup):
    """The GUI's per-image session and the batch engine draw the same views for the same (seed, index)."""
    from tttgui.session import MethodConfig, Session
    _, model, stats = setup
    images = np.random.default_rng(3).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    res = evaluate(model, stats, images, np.array([0, 1]), np.array([11, 12]),
                   EvalConfig(methods=("ttt",), settings=MethodConfig(steps=2, views=4, seed=4)), "cpu")
    for row, im in zip(res.images, images):
        s = Session(model, stats, MethodConfig("ttt", steps=2, views=4, seed=4), "cpu")
        s.set_image(im, index=row.index)
        list(s.run(2))
        out = s.result()
        assert out.prediction_after == row.prediction_after
        assert out.confidence_after == pytest.approx(row.confidence_after, abs=1e-6)
        assert out.loss_last == pytest.approx(row.loss_last, abs=1e-6)


def no_work(monkeypatch):
    """Make evaluate() record its calls instead of working: input checks must come before any work."""
    import tttgui.evaluation as ev
    calls = []
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: calls.append(1))
    return calls


@pytest.mark.parametrize("extra", [
    ["--threads", "-1"], ["--threads", "0"], ["--seed", "-1", "--limit", "2"],
    ["--seed", "-1", "--protocol", "online"], ["--seed", str(2 ** 64)],
    ["--severities", "", "--corruptions", "fog"], ["--severities", "5,5", "--corruptions", "fog"],
    ["--corruptions", "fog,fog"], ["--methods", "ttt,TTT"]])
def test_bad_numbers_and_lists_are_one_line_before_any_work(setup, tmp_path, capsys, monkeypatch, extra):
    root, _, _ = setup
    calls = no_work(monkeypatch)
    assert run_cli(root, tmp_path / "x", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err and "expected" in err, err
    assert not calls and not (tmp_path / "x").exists()


def test_unwritable_outputs_are_refused_before_any_work(setup, tmp_path, capsys, monkeypatch):
    import os
    root, _, _ = setup
    calls = no_work(monkeypatch)
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "taken" / "images.csv").mkdir(parents=True)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    real_open = os.open

    def open_unless_locked(path, *args, **kwargs):   # root ignores the mode bits: refuse as the kernel would
        if locked in (Path(path), Path(path).parent):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", open_unless_locked)
    try:
        for out, needle in ((tmp_path / "file", "is a file"), (tmp_path / "file" / "sub", "under the file"),
                            (tmp_path / "taken", "images.csv"), (locked, "not writable"),
                            (locked / "new" / "deeper", "not writable")):
            assert run_cli(root, out) == 2 and not calls
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and needle in err and "expected a folder" in err, err
    finally:
        locked.chmod(0o755)


def test_paired_difference_goes_by_correctness_not_by_comparing_numbers():
    """label -1 (no label) equals prediction -1 (diverged) as numbers, and a diverged row's prediction is no
    hit even when it equals the label: neither may count as correct."""
    from tttgui.results import ImageRow, paired_difference

    def row(i, label, pred, status="ok"):
        return ImageRow("none", 0, "m", "episodic", i, label, 0, 0.5, pred, 0.5, None, None, 0, 0.0, status)
    a = [row(0, 1, 1), row(1, 1, 1), row(2, -1, -1)]
    b = [row(0, 1, 1, "diverged"), row(1, 1, 1), row(2, -1, -1, "diverged")]
    diff, _, _, n = paired_difference(a, b)
    assert n == 2 and diff == pytest.approx(50.0)


def test_eval_help_lists_the_registered_methods(capsys, monkeypatch):
    from tttgui.methods import method_names

    monkeypatch.setenv("COLUMNS", "400")   # no wrap inside a name such as aws-mean
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    methods = next(line for line in capsys.readouterr().out.splitlines() if "--methods" in line and "'all'" in line)
    assert all(f" {m}," in methods or methods.endswith(f" {m}") for m in method_names()), methods


@pytest.fixture(scope="module")
def bn_1x1(tmp_path_factory):
    """A BatchNorm checkpoint whose last maps are 1x1 (4-px input) and six 4-px images."""
    root = tmp_path_factory.mktemp("bn1x1")
    rng = np.random.default_rng(0)
    for k in range(6):
        (root / "data" / CLASSES[k % 3]).mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        image.save(root / "data" / CLASSES[k % 3] / f"{k}.png")
    torch.manual_seed(0)
    spec = ModelSpec(num_classes=3, heads=("rotation",), arch_args={"depth": 8, "width": 1, "norm": "bn"},
                     input_size=4)
    model = build_model(spec).eval()
    stats = source_statistics(model, torch.from_numpy(rng.integers(0, 256, (16, 4, 4, 3), dtype=np.uint8)), "cpu")
    save_checkpoint(root / "ck.pt", model, CLASSES, stats, {"clean_error": 50.0})
    return root


def test_methods_all_names_what_it_leaves_out_and_keeps_the_rest(bn_1x1, tmp_path, capsys):
    """Tent cannot predict one image with batch statistics of 1x1 maps, aws has no episodic recipe: `all` says so
    in one line and runs the others; naming tent is refused in one line, a stream that leaves a batch of 1 too."""
    common = ["eval", "--checkpoint", str(bn_1x1 / "ck.pt"), "--data", str(bn_1x1 / "data"), "--corruptions",
              "none", "--steps", "1", "--views", "4", "--device", "cpu", "--no-progress"]
    assert main(common + ["--methods", "all", "--out", str(tmp_path / "all")]) == 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("--methods all: skipping tent (tent normalises"), err
    assert "1 value per channel" in err and "; aws, aws-mean (no episodic recipe: they learn from the pairs" in err
    ran = [r["method"] for r in read(tmp_path / "all" / "summary.csv")]
    assert ran == ["source", "ttt", "ttt++", "actmad", "memo"]
    for extra in (["--methods", "source,tent"], ["--methods", "tent", "--protocol", "online", "--batch-size", "5"]):
        assert main(common + extra + ["--out", str(tmp_path / "named")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "gets 1 value per channel; expected" in err, err
    assert not (tmp_path / "named").exists()


def test_methods_all_skips_methods_whose_source_statistics_the_checkpoint_lacks(setup, tmp_path, capsys):
    """A checkpoint without source statistics: `all` runs the others and names ttt++ and actmad with the reason
    (TTT++ refused at set-up, so the whole run stopped in one line)."""
    root, model, _ = setup
    save_checkpoint(tmp_path / "bare.pt", model, CLASSES, {}, {"clean_error": 50.0})
    common = ["eval", "--checkpoint", str(tmp_path / "bare.pt"), "--data", str(root / "data"), "--corruptions",
              "none", "--steps", "1", "--views", "2", "--device", "cpu", "--no-progress"]
    assert main(common + ["--methods", "all", "--out", str(tmp_path / "all")]) == 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ttt++ (method ttt++ needs the source feature mean" in err, err
    assert "actmad (method actmad needs location-wise source statistics" in err, err
    ran = [r["method"] for r in read(tmp_path / "all" / "summary.csv")]
    assert "ttt++" not in ran and "actmad" not in ran and {"source", "ttt", "tent"} <= set(ran), ran
