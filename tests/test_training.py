"""`tttgui train`: two phases, three explicit data sets, resumable, writes checkpoint + model card."""
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tttgui.augment import rotate, to_float
from tttgui.cli import main
from tttgui.data import ArrayDataset
from tttgui.errors import UserError
from tttgui.models import load_checkpoint
from tttgui.stats import statistics_sample
from tttgui.training import TrainConfig, Trainer, stratified_fraction


def _losses(model, x_u8, y):
    model.eval()
    with torch.no_grad():
        x = to_float(torch.from_numpy(x_u8))
        ce = F.cross_entropy(model(x), torch.from_numpy(y)).item()
        r = torch.arange(len(x)) % 4
        rot = F.cross_entropy(model.rotation_logits(rotate(x, r)), r).item()
    return ce, rot


def synthetic_folder(root, per_class=75):
    """A few hundred images where both tasks are learnable in one epoch: a bright top edge shows the
    orientation, a colour cast shows the class."""
    rng = np.random.default_rng(0)
    for c in range(4):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (32, 32, 3)).astype(np.uint8)
            img[:12] += 150
            img[..., c % 3] += 40 * (1 + c // 3)
            Image.fromarray(img).save(root / f"c{c}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    data = synthetic_folder(tmp / "data")
    out = tmp / "m.pt"
    cfg = TrainConfig(data=str(data), test=str(data), out=str(out), ssl_epochs=1, epochs=1,
                      batch_size=16, lr=0.05, stats_images=64, progress=False, seed=1)
    trainer = Trainer(cfg, log=lambda s: None)
    x, y = trainer.x_lab.numpy(), trainer.y_lab.numpy()
    before = _losses(trainer.model, x, y)
    meta = trainer.fit()
    return out, meta, before, _losses(trainer.model, x, y)


def test_two_phase_run_lowers_both_losses(tiny_run):
    out, meta, (ce0, rot0), (ce1, rot1) = tiny_run
    assert ce1 < ce0 and rot1 < rot0
    assert [h["phase"] for h in meta["history"]] == [1, 2]
    assert "cls_loss" not in meta["history"][0]          # phase 1 never reads labels


def test_checkpoint_records_everything_methods_need(tiny_run):
    out, meta, *_ = tiny_run
    model, payload = load_checkpoint(out)
    stats = payload["source_stats"]
    names = [n for n, _ in model.norm_layers()]
    assert list(stats["norm"]) == names
    first = stats["norm"][names[0]]
    assert first["mean"].shape == (16,) and first["loc_var"].shape == (16, 32, 32)
    assert stats["features"]["cov"].shape == (64, 64) and stats["images"] == 64
    assert payload["classes"] == ["c0", "c1", "c2", "c3"]
    assert 0 <= payload["meta"]["clean_error"] <= 100 and "rotation_accuracy" in payload["meta"]
    card = out.with_suffix(".md").read_text()
    assert "Clean error" in card and "Wall time" in card and "Rotation accuracy" in card


def test_source_statistics_match_a_direct_computation(tiny_run):
    out, *_ = tiny_run
    model, payload = load_checkpoint(out)
    from tttgui.training import load_images
    from tttgui.stats import capture_norm_outputs, channel_moments, statistics_sample
    x, _, _ = load_images(payload["meta"]["config"]["data"], None, None)
    sample = statistics_sample(torch.from_numpy(x), 64, payload["meta"]["source_stats"]["seed"])
    with torch.no_grad(), capture_norm_outputs(model) as outs:
        model(to_float(sample))
    name = model.norm_layers()[5][0]
    mean, var = channel_moments(outs[name])
    assert torch.allclose(mean, payload["source_stats"]["norm"][name]["mean"], atol=1e-4)
    assert torch.allclose(var, payload["source_stats"]["norm"][name]["var"], rtol=1e-3, atol=1e-4)


def test_statistics_are_drawn_from_every_class_of_a_sorted_folder():
    # An image folder lists its classes one after another: its first k images would be one or two classes
    # (the first shipped model's statistics were airplanes and automobiles only, and ActMAD diverged on them).
    x = torch.zeros(400, 8, 8, 3, dtype=torch.uint8)
    for c in range(4):
        x[100 * c:100 * (c + 1)] = 60 * (c + 1)
    sample = statistics_sample(x, 100, seed=0, augment=False)
    counts = torch.bincount(sample[:, 4, 4, 0].long() // 60 - 1, minlength=4)
    assert counts.min() >= 15, counts
    assert torch.equal(sample, statistics_sample(x, 100, seed=0, augment=False))   # seeded
    aug = statistics_sample(x, 100, seed=0)
    assert (aug == 0).any() and aug.shape == sample.shape                         # crops show the zero padding


def test_stats_command_rewrites_the_statistics(tiny_run, tmp_path, capsys):
    out, *_ = tiny_run
    data = load_checkpoint(out)[1]["meta"]["config"]["data"]
    target = tmp_path / "s.pt"
    assert main(["stats", "--checkpoint", str(out), "--data", data, "--images", "40", "--seed", "3",
                 "--out", str(target), "--device", "cpu"]) == 0
    model, payload = load_checkpoint(target)
    old = load_checkpoint(out)[1]
    assert payload["source_stats"]["images"] == 40 and payload["meta"]["source_stats"]["seed"] == 3
    name = model.norm_layers()[0][0]
    new_mean, old_mean = (p["source_stats"]["norm"][name]["loc_mean"] for p in (payload, old))
    assert not torch.equal(new_mean, old_mean)
    for k, v in old["state_dict"].items():
        assert torch.equal(v, payload["state_dict"][k])
    assert main(["stats", "--checkpoint", str(tmp_path / "none.pt"), "--data", data, "--out",
                 str(tmp_path / "n.pt")]) == 2
    assert "none.pt not found" in capsys.readouterr().err


def test_stats_command_reproduces_the_trainers_statistics(tiny_run, tmp_path):
    """`tttgui stats` with the training's data, image count and seed gives the statistics the trainer stored
    (the same images, the same crops), so a recomputed checkpoint is the shipped one, not a near-copy."""
    out, *_ = tiny_run
    old = load_checkpoint(out)[1]
    info = old["meta"]["source_stats"]
    assert info["images"] < 300                       # a draw from the folder, not all of it
    target = tmp_path / "again.pt"
    assert main(["stats", "--checkpoint", str(out), "--data", info["data"], "--images", str(info["images"]),
                 "--seed", str(info["seed"]), "--out", str(target), "--device", "cpu"]) == 0
    new = load_checkpoint(target)[1]["source_stats"]
    for name, layer in old["source_stats"]["norm"].items():
        for key, v in layer.items():
            assert torch.allclose(v, new["norm"][name][key], rtol=1e-5, atol=1e-6), (name, key)
    assert torch.allclose(old["source_stats"]["features"]["cov"], new["features"]["cov"], rtol=1e-5, atol=1e-6)


def test_resume_continues_from_the_state_file(tmp_path, cifar_test_dir):
    common = ["train", "--data", str(cifar_test_dir), "--out", str(tmp_path / "r.pt"), "--limit", "64",
              "--batch-size", "32", "--ssl-epochs", "0", "--no-progress", "--device", "cpu"]
    assert main(common + ["--epochs", "1"]) == 0
    state = torch.load(tmp_path / "r.state.pt", weights_only=True)
    assert state["epoch"] == 1
    assert main(common + ["--epochs", "2", "--resume"]) == 0
    _, payload = load_checkpoint(tmp_path / "r.pt")
    assert [h["epoch"] for h in payload["meta"]["history"]] == [1, 2]
    assert payload["meta"]["restarts"] == [1]          # --epochs 1 -> 2: the cosine restarted after epoch 1
    assert "warm restarts after joint epochs 1" in (tmp_path / "r.md").read_text()
    assert "Changed on resume: after epoch 1: epochs 1 -> 2" in (tmp_path / "r.md").read_text()


def test_a_warm_restart_ramps_the_lr_up_over_one_epoch():
    # Jumping from ~0 to the cosine's value at a restart made the shipped model diverge (train acc 92 -> 24 %).
    trainer = SimpleNamespace(cfg=TrainConfig(data="", out="", lr=0.1))
    iters, epochs = 100, 44
    plain = [Trainer.lr_at(trainer, epochs, 30 * iters + i, iters) for i in range(2 * iters)]
    ramped = [Trainer.lr_at(trainer, epochs, 30 * iters + i, iters, restart=30) for i in range(2 * iters)]
    assert ramped[0] == pytest.approx(plain[0] / iters)
    assert all(r < p for r, p in zip(ramped[:iters - 1], plain))
    assert ramped[iters - 1] == pytest.approx(plain[iters - 1])
    assert ramped[iters:] == plain[iters:]               # after one epoch it is the cosine again
    assert Trainer.lr_at(trainer, epochs, 29 * iters, iters, restart=30) == \
        Trainer.lr_at(trainer, epochs, 29 * iters, iters)


def test_label_fraction_is_stratified_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    a = stratified_fraction(labels, 0.1, seed=3)
    assert len(a) == 50 and np.all(np.bincount(labels[a]) == 5)
    assert np.array_equal(a, stratified_fraction(labels, 0.1, seed=3))
    assert not np.array_equal(a, stratified_fraction(labels, 0.1, seed=4))


def test_bad_options_are_one_line_errors(tmp_path, capsys, cifar_test_dir):
    rc = main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "nope" in err and "\n" not in err and "Traceback" not in err
    rc = main(["train", "--data", str(cifar_test_dir), "--out", str(tmp_path / "x.pt"), "--heads", "jigsaw"])
    assert rc == 2 and "jigsaw" in capsys.readouterr().err
    rc = main(["train", "--data", str(cifar_test_dir), "--out", str(tmp_path / "x.pt"), "--label-fraction", "0",
               "--limit", "20"])
    assert rc == 2 and "--label-fraction" in capsys.readouterr().err


def test_array_dataset_round_trip():
    ds = ArrayDataset(np.zeros((3, 4, 4, 3), np.uint8), [0, 1, 2], ["a", "b", "c"])
    image, label, index = ds[-1]
    assert image.shape == (4, 4, 3) and label == 2 and index == 2


class _Recording(Trainer):
    """Records the weights after every SWA epoch; with stop_after=k it dies once epoch k is saved."""
    def __init__(self, cfg, stop_after=None):
        super().__init__(cfg, log=lambda s: None)
        self.ends, self.stop_after = [], stop_after

    def swa_update(self):
        self.ends.append({k: v.clone() for k, v in self.model.state_dict().items()})
        super().swa_update()

    def save_state(self):
        super().save_state()
        if self.epoch == self.stop_after:
            raise KeyboardInterrupt


def _swa_config(tmp_path, name, **kw):
    data = tmp_path / "data"
    if not data.is_dir():
        synthetic_folder(data, per_class=24)
    return TrainConfig(data=str(data), test=str(data), out=str(tmp_path / name), ssl_epochs=0, epochs=1,
                       swa_epochs=2, swa_lr=0.02, batch_size=32, lr=0.05, stats_images=32, progress=False,
                       seed=2, **kw)


def test_swa_checkpoint_is_the_mean_of_the_epoch_end_weights_and_resumes(tmp_path):
    full = _Recording(_swa_config(tmp_path, "a.pt"))
    meta = full.fit()
    assert [h["phase"] for h in meta["history"]] == [2, 3, 3] and len(full.ends) == 2
    model, payload = load_checkpoint(tmp_path / "a.pt")
    sd = model.state_dict()
    for k, v in sd.items():
        if v.is_floating_point():
            assert torch.allclose(v, (full.ends[0][k] + full.ends[1][k]) / 2, atol=1e-6), k
    assert not torch.equal(full.ends[0]["fc.weight"], full.ends[1]["fc.weight"])
    swa = payload["meta"]["swa"]
    assert swa["epochs"] == 2 and swa["lr"] == 0.02 and "clean_error" in swa["last_iterate"]
    card = (tmp_path / "a.md").read_text()
    assert "2 epochs of weight averaging (SWA) at constant lr 0.02" in card and "| 3 | swa |" in card
    assert "the last SGD iterate alone" in card
    # killed after the first SWA epoch, then resumed: the same average as the uninterrupted run
    with pytest.raises(KeyboardInterrupt):
        _Recording(_swa_config(tmp_path, "b.pt"), stop_after=2).fit()
    assert torch.load(tmp_path / "b.state.pt", weights_only=True)["swa_n"] == 1
    _Recording(_swa_config(tmp_path, "b.pt")).fit(resume=True)
    resumed, payload = load_checkpoint(tmp_path / "b.pt")
    for k, v in sd.items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-5), k
    assert payload["meta"]["changes"] == [] and "Changed on resume" not in (tmp_path / "b.md").read_text()
    # a resume may not change the joint epochs, the lr or the length already averaged under a running average
    b = _swa_config(tmp_path, "b.pt")
    with pytest.raises(UserError, match="weight-averaging phase"):
        Trainer(replace(b, epochs=3), log=lambda s: None).load_state()
    with pytest.raises(UserError, match="--swa-lr 0.02; expected the same --swa-lr, not 0.01"):
        Trainer(replace(b, swa_lr=0.01), log=lambda s: None).load_state()
    with pytest.raises(UserError, match="averaged 2 SWA epochs already; expected --swa-epochs 2 or more, not 1"):
        Trainer(replace(b, swa_epochs=1), log=lambda s: None).load_state()
    # a larger --swa-epochs continues the same average, and the card says what the resume changed
    meta = Trainer(replace(b, swa_epochs=3), log=lambda s: None).fit(resume=True)
    assert meta["swa"]["epochs"] == 3 and [h["epoch"] for h in meta["history"]] == [1, 2, 3, 4]
    assert meta["changes"] == [{"after_epoch": 3, "changed": {"swa_epochs": [2, 3]}}]
    assert "- Changed on resume: after epoch 3: swa_epochs 2 -> 3" in (tmp_path / "b.md").read_text()


def test_swa_with_batchnorm_recomputes_its_statistics(tmp_path):
    trainer = Trainer(_swa_config(tmp_path, "bn.pt", norm="bn"), log=lambda s: None)
    trainer.fit()
    model, _ = load_checkpoint(tmp_path / "bn.pt")
    first = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # reset, then one pass of the upright and one of the rotated training images through the trunk
    assert int(first.num_batches_tracked) == 2 * -(-len(trainer.x_lab) // 32)
    assert torch.isfinite(model(to_float(trainer.x_lab[:64]))).all()


def test_bf16_precision_autocasts_the_step_and_keeps_losses_and_weights_float32(tmp_path):
    """--precision bf16: the convolutions run in bfloat16 (about 2x faster on AVX-512 BF16 CPUs), the weights,
    the optimizer and the losses stay float32; the card says so."""
    cfg = replace(_swa_config(tmp_path, "p.pt", precision="bf16", ssl="simclr", heads=("rotation",)),
                  ssl_epochs=1, swa_epochs=0)
    trainer = Trainer(cfg, log=lambda s: None)
    seen = []
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype) if m.training else None)  # not evaluation
    losses = []
    real = F.cross_entropy
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "cross_entropy", lambda logits, *a, **k: losses.append(logits.dtype) or real(logits, *a, **k))
        meta = trainer.fit()
    assert set(seen) == {torch.bfloat16} and torch.float32 in losses and torch.bfloat16 not in losses
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert np.isfinite(meta["clean_error"]) and meta["history"][0]["con_loss"] > 0
    assert "- Precision: bf16 autocast" in (tmp_path / "p.md").read_text()


def test_a_resume_that_switches_to_bf16_is_on_the_card_even_from_a_state_without_the_key(tmp_path):
    cfg = replace(_swa_config(tmp_path, "q.pt"), swa_epochs=0, epochs=2)
    with pytest.raises(KeyboardInterrupt):
        _Recording(cfg, stop_after=1).fit()
    state = torch.load(tmp_path / "q.state.pt", weights_only=True)
    del state["config"]["precision"]        # a state saved before the option existed
    torch.save(state, tmp_path / "q.state.pt")
    meta = Trainer(replace(cfg, precision="bf16"), log=lambda s: None).fit(resume=True)
    assert meta["changes"] == [{"after_epoch": 1, "changed": {"precision": ["fp32", "bf16"]}}]
    assert "after epoch 1: precision fp32 -> bf16" in (tmp_path / "q.md").read_text()


def test_an_unknown_precision_is_one_line(tmp_path, capsys, cifar_test_dir):
    with pytest.raises(SystemExit) as exc:     # argparse's choices: usage plus one line
        main(["train", "--data", str(cifar_test_dir), "--out", str(tmp_path / "x.pt"), "--precision", "fp8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and "'fp8'" in err[-1] and "'fp32', 'bf16'" in err[-1]
    with pytest.raises(UserError, match="precision 'fp16' is unknown; expected one of fp32, bf16"):
        Trainer(replace(_swa_config(tmp_path, "u.pt"), precision="fp16"), log=lambda s: None).fit()


def test_swa_refreshes_batchnorm_whatever_norm_said(tmp_path):
    """A model with BatchNorm layers that --norm did not choose (a timm backbone, an --init architecture) gets its
    running statistics recomputed for the averaged weights too; the averaged buffers are not those statistics."""
    from tttgui.training import refresh_batchnorm

    cfg = _swa_config(tmp_path, "bn.pt", spec_overrides={"arch_args": {"depth": 8, "width": 1, "norm": "bn"}})
    assert cfg.norm == "gn"
    trainer = Trainer(cfg, log=lambda s: None)
    trainer.fit()
    model, _ = load_checkpoint(tmp_path / "bn.pt")
    bns = [k for k in model.state_dict() if k.endswith("running_mean")]
    assert bns
    saved = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    averaged = {k: trainer.swa[k] for k in saved}
    refresh_batchnorm(model, trainer.x_lab, cfg.batch_size, "cpu")
    for k, v in saved.items():
        assert torch.allclose(v, model.state_dict()[k], atol=1e-5), k   # the refreshed statistics were saved
    assert any(not torch.allclose(averaged[k], saved[k], atol=1e-4) for k in saved)


def test_after_full_fine_tuning_batchnorm_is_refreshed_on_upright_images_only(tmp_path, monkeypatch):
    """`full` trains the trunk on upright images alone: refreshing its BatchNorm statistics with rotated images too
    (joint training's mix) would give the averaged classifier statistics it never saw."""
    import tttgui.training as training

    calls = []
    real = training.refresh_batchnorm
    monkeypatch.setattr(training, "refresh_batchnorm", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    arch = {"arch_args": {"depth": 8, "width": 1, "norm": "bn"}}
    for finetune in ("full", "joint"):
        Trainer(_swa_config(tmp_path, f"{finetune}.pt", finetune=finetune, spec_overrides=arch),
                log=lambda s: None).fit()
    assert [c["rotated"] for c in calls] == [False, True]


def test_a_resume_on_other_data_or_another_label_draw_is_refused(tmp_path):
    """A state continues only the run it belongs to: another label fraction, seed or labeled folder would train the
    saved weights on other images while the card claimed the new ones; the self-supervised phase cannot change
    length once fine-tuning began. Schedule options (epochs, lr) stay changeable and are recorded."""
    b = _swa_config(tmp_path, "r.pt", label_fraction=0.5)
    with pytest.raises(KeyboardInterrupt):
        _Recording(b, stop_after=1).fit()
    for change, needle in (({"label_fraction": 1.0}, "--label-fraction 0.5, not 1.0"), ({"seed": 3}, "--seed 2, not 3"),
                           ({"data": str(tmp_path)}, "--labeled"), ({"ssl_epochs": 2}, "expected --ssl-epochs 0")):
        with pytest.raises(UserError, match=needle):
            Trainer(replace(b, **change), log=lambda s: None).load_state()
    moved = tmp_path / "link"
    moved.symlink_to(tmp_path / "data")          # the same folder by another path resumes
    assert Trainer(replace(b, data=str(moved), test=str(moved)), log=lambda s: None).load_state()
    assert Trainer(replace(b, lr=0.01), log=lambda s: None).load_state()


def test_the_test_folder_is_scored_by_class_name_and_checked_before_training(tmp_path):
    """A --test folder holding other classes, or its classes in another order, was compared by position: the card's
    clean error was wrong (a 9-class CIFAR test folder without ship/ read 21.1 % for 11.85 %)."""
    import shutil

    from tttgui.training import Trainer

    data = synthetic_folder(tmp_path / "data", per_class=24)
    classes = sorted(p.name for p in data.iterdir())
    sub = tmp_path / "sub"
    shutil.copytree(data / classes[-1], sub / classes[-1])       # only the last class: label 0 here
    cfg = TrainConfig(data=str(data), test=str(sub), out=str(tmp_path / "m.pt"), ssl_epochs=0, epochs=1,
                      batch_size=32, stats_images=16, progress=False)
    trainer = Trainer(cfg, log=lambda s: None)
    x, y = trainer.test_images()
    assert len(x) == 24 and set(y.tolist()) == {len(classes) - 1}
    other = tmp_path / "other"
    (other / "zebra").mkdir(parents=True)
    shutil.copy(next((data / classes[0]).iterdir()), other / "zebra")
    with pytest.raises(UserError, match="--test .* has class zebra, which --labeled"):
        Trainer(replace(cfg, test=str(other)), log=lambda s: None)


def test_a_root_with_splits_trains_on_train_and_the_cache_follows_the_files(tmp_path):
    """`--labeled ROOT` (train/ and test/ inside) read the test split, the images evaluation corrupts; and the
    decode cache, keyed on the top folder's time, served stale labels after an image moved between classes."""
    import os
    import shutil

    from tttgui.train_data import load_images

    root = tmp_path / "root"
    synthetic_folder(root / "train", per_class=6)
    synthetic_folder(root / "test", per_class=2)
    x, y, classes = load_images(str(root), None, str(tmp_path / "cache"))
    assert len(x) == 6 * len(classes)
    assert len(load_images(str(root), None, None, split="test")[0]) == 2 * len(classes)
    train = root / "train"
    assert (load_images(str(train), None, str(tmp_path / "cache"))[1] == y).all()    # cached now
    moved = sorted((train / classes[0]).iterdir())[0]
    stamp = os.stat(train).st_mtime_ns
    shutil.move(moved, train / classes[1] / ("m" + moved.name))
    os.utime(train, ns=(stamp, stamp))                          # the top folder's time is as it was
    _, y2, _ = load_images(str(train), None, str(tmp_path / "cache"))
    assert (y2 == 0).sum() == 5 and (y2 == 1).sum() == 7
