"""The self-supervised phase: SimCLR views as torchvision composes its CIFAR recipe, NT-Xent values pinned."""
import math

import pytest
import torch
import torchvision.transforms.functional as TF

from tttgui.augment import _contrast, _gray, _hue_shift, _saturation, simclr_views
from tttgui.training import kept_heads, nt_xent, ssl_tasks, TrainConfig
from tttgui.errors import UserError


def test_nt_xent_pinned_values():
    # positives identical, negatives orthogonal, temperature 0.5: each row's loss is log(1 + 2 e^-2)
    e = torch.eye(2)
    z = torch.cat([e, e])
    assert nt_xent(z, 0.5).item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), abs=1e-6)
    # all projections equal: every one of the 2N-1 candidates is as likely, log(2N - 1)
    z = torch.nn.functional.normalize(torch.ones(8, 4), dim=1)
    assert nt_xent(z, 0.5).item() == pytest.approx(math.log(7), abs=1e-6)


def test_colour_ops_match_torchvision():
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for f in (-0.1, 0.03, 0.1):
        ref = torch.stack([TF.adjust_hue(v, f) for v in x])
        assert torch.allclose(_hue_shift(x, torch.full((6,), f)), ref, atol=1e-5)
    f = torch.full((6,), 1.35)
    assert torch.allclose(_contrast(x, f), torch.stack([TF.adjust_contrast(v, 1.35) for v in x]), atol=1e-6)
    assert torch.allclose(_saturation(x, f), torch.stack([TF.adjust_saturation(v, 1.35) for v in x]), atol=1e-6)
    assert torch.allclose(_gray(x), torch.stack([TF.rgb_to_grayscale(v) for v in x]), atol=1e-6)


def test_simclr_views_recipe_rates_and_seeding():
    x = torch.rand(1, 3, 32, 32).expand(4000, -1, -1, -1).contiguous()
    v = simclr_views(x, torch.Generator().manual_seed(1))
    assert torch.equal(v, simclr_views(x, torch.Generator().manual_seed(1)))
    assert v.shape == x.shape and v.min() >= 0 and v.max() <= 1
    gray = (v[:, 0] == v[:, 1]).all(dim=(1, 2)) & (v[:, 1] == v[:, 2]).all(dim=(1, 2))
    assert 0.17 < gray.float().mean() < 0.23                      # RandomGrayscale(p=0.2)
    # without a crop (scale 1, ratio 1 happens rarely) the views differ from the image: every view is new
    assert (v - x).abs().flatten(1).amax(1).min() > 0


def test_ssl_task_names_and_kept_heads():
    assert ssl_tasks("rotation+simclr") == ("rotation", "simclr")
    with pytest.raises(UserError, match="expected rotation, simclr or rotation"):
        ssl_tasks("rotation+jigsaw")
    cfg = TrainConfig(data="", out="", ssl="simclr", heads=("rotation",))
    assert kept_heads(cfg) == ("rotation", "contrastive")
    assert kept_heads(TrainConfig(data="", out="", ssl="simclr", ssl_epochs=0, heads=())) == ()


# -- the phases on a tiny model ----------------------------------------------------------------------------
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402

from test_training import synthetic_folder  # noqa: E402
from tttgui.cli import main  # noqa: E402
from tttgui.models import load_checkpoint  # noqa: E402
from tttgui.probe import extract_features, fit_linear  # noqa: E402
from tttgui.training import Trainer, per_class  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_folder(tmp_path_factory.mktemp("ssl") / "data", per_class=12)


def _cfg(data, out, **kw):
    base = dict(data=str(data), test=str(data), out=str(out), ssl="simclr", ssl_epochs=1, epochs=1,
                batch_size=16, lr=0.05, stats_images=16, progress=False, seed=3, spec_overrides={
                    "arch_args": {"depth": 8, "width": 1, "norm": "gn"}})
    return TrainConfig(**{**base, **kw})


class _Trap:
    """Labels that raise when read: the self-supervised phase must never touch them."""

    def __getitem__(self, i):
        raise AssertionError("a label was read in the self-supervised phase")

    def __len__(self):
        return 48


def test_ssl_phase_never_reads_a_label(data, tmp_path):
    trainer = Trainer(_cfg(data, tmp_path / "m.pt", finetune="none"), log=lambda s: None)
    trainer.y_lab = _Trap()
    stats = trainer.run_epoch(1, 0, 1)
    assert stats["con_loss"] > 0 and "cls_loss" not in stats


def test_simclr_then_none_keeps_the_self_supervised_model(data, tmp_path, capsys):
    meta = Trainer(_cfg(data, tmp_path / "m.pt", finetune="none"), log=lambda s: None).fit()
    model, payload = load_checkpoint(tmp_path / "m.pt")
    assert model.projector is not None and "contrastive" in payload["spec"]["heads"]
    assert meta["finetune"] == "none" and "clean_error" not in meta
    assert 0 <= meta["linear_probe"]["error"] <= 100 and meta["linear_probe"]["train_images"] == 48
    card = (tmp_path / "m.md").read_text()
    assert "Linear-probe error" in card and "Clean error" not in card and "none (the self-supervised" in card
    # its classifier is random: evaluating it would print chance as a result, so that is refused in one line
    from tttgui.cli import main
    rc = main(["eval", "--data", str(data), "--checkpoint", str(tmp_path / "m.pt"), "--limit", "4",
               "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "classifier was never trained" in err and "--finetune prototypes" in err
    assert not (tmp_path / "ev").exists()


def test_linear_finetune_is_the_probe_on_frozen_features(data, tmp_path):
    trainer = Trainer(_cfg(data, tmp_path / "m.pt", finetune="linear"), log=lambda s: None)
    meta = trainer.fit()
    model, _ = load_checkpoint(tmp_path / "m.pt")
    assert [h["phase"] for h in meta["history"]] == [1]          # no supervised epoch: the trunk is frozen
    feats = extract_features(model, trainer.x_lab, "cpu")
    w, b = fit_linear(feats, trainer.y_lab, 4)
    assert torch.allclose(model.fc.weight, w, atol=1e-5) and torch.allclose(model.fc.bias, b, atol=1e-5)
    # the probe separates these colour-cast classes far better than chance
    assert meta["clean_error"] < 50


def test_full_finetune_trains_cross_entropy_only(data, tmp_path):
    meta = Trainer(_cfg(data, tmp_path / "m.pt", finetune="full", heads=()), log=lambda s: None).fit()
    assert [h["phase"] for h in meta["history"]] == [1, 2]
    assert "cls_loss" in meta["history"][1] and "rot_loss" not in meta["history"][1]
    assert "con_loss" not in meta["history"][1]


def test_fit_linear_recovers_a_separable_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g) * torch.tensor([1.0, 10, 0.1, 1, 1]) + 3
    y = (x[:, 0] > 3).long() + 2 * (x[:, 1] > 3).long()
    w, b = fit_linear(x, y, 4)
    assert ((x @ w.t() + b).argmax(1) == y).float().mean() > 0.97


def test_label_draws_are_class_balanced_and_seeded():
    labels = np.repeat(np.arange(3), [50, 30, 40])
    a = per_class(labels, 7, seed=1)
    assert np.bincount(labels[a]).tolist() == [7, 7, 7]
    assert np.array_equal(a, per_class(labels, 7, seed=1)) and not np.array_equal(a, per_class(labels, 7, seed=2))
    with pytest.raises(UserError, match="only 30 labeled images"):
        per_class(labels, 31, seed=0)


def _err(capsys, argv, text):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and text in err and "Traceback" not in err and err.count("\n") == 1, err


def test_bad_ssl_inputs_are_one_line(data, tmp_path, capsys):
    base = ["train", "--labeled", str(data), "--out", str(tmp_path / "m.pt"), "--no-progress", "--device", "cpu"]
    _err(capsys, base + ["--arch", "timm:test_resnett"], "e.g. test_resnet")
    _err(capsys, base + ["--arch", "timm:resnet18", "--weights", str(tmp_path / "none.pth")], "not found")
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "w.pth")
    _err(capsys, base + ["--arch", "timm:test_resnet", "--weights", str(tmp_path / "w.pth"), "--epochs", "1",
                         "--ssl-epochs", "0"], "does not fit this backbone")
    other = tmp_path / "other"
    for name in ("x", "y"):
        (other / name).mkdir(parents=True)
        for f in sorted((data / "c0").iterdir())[:2]:
            (other / name / f.name).write_bytes(f.read_bytes())
    _err(capsys, base + ["--unlabeled", str(other), "--epochs", "1"], "expected the same classes")
    _err(capsys, base + ["--labels-per-class", "13"], "has only 12 labeled images")
    _err(capsys, base + ["--finetune", "partial"], "--finetune 'partial' is unknown")


def test_a_timm_model_goes_through_train_eval_and_the_window(data, tmp_path, qtbot):
    out = tmp_path / "timm.pt"
    assert main(["train", "--labeled", str(data), "--test", str(data), "--out", str(out), "--arch", "timm:test_vit",
                 "--ssl-epochs", "1", "--epochs", "1", "--batch-size", "16", "--lr", "0.01", "--no-progress",
                 "--device", "cpu", "--stats-images", "16"]) == 0
    model, payload = load_checkpoint(out)
    assert payload["spec"]["arch"] == "timm:test_vit" and payload["spec"]["input_size"] == 32
    assert "rotation_accuracy" in payload["meta"]
    assert main(["eval", "--checkpoint", str(out), "--data", str(data), "--corruptions", "gaussian_noise",
                 "--methods", "source,ttt", "--limit", "4", "--steps", "1", "--out", str(tmp_path / "ev"),
                 "--device", "cpu", "--no-progress"]) == 0
    assert (tmp_path / "ev" / "summary.csv").is_file()
    from test_gui import open_window
    from tttgui.gui.app import parse
    win = open_window(qtbot, parse(["--checkpoint", str(out), "--data", str(data),
                                    "--settings", str(tmp_path / "s.ini")]))
    try:
        assert win.model_info["spec"]["arch"] == "timm:test_vit" if "spec" in win.model_info else True
        assert win.model_info["classes"] == ["c0", "c1", "c2", "c3"]
        with qtbot.waitSignal(win.run_done, timeout=60000):
            win.step()
    finally:
        win.close()


def test_prototypes_from_a_self_supervised_checkpoint(data, tmp_path, capsys):
    Trainer(_cfg(data, tmp_path / "ssl.pt", finetune="none"), log=lambda s: None).fit()
    ssl_model, _ = load_checkpoint(tmp_path / "ssl.pt")
    out = tmp_path / "proto.pt"
    assert main(["train", "--labeled", str(data), "--test", str(data), "--init", str(tmp_path / "ssl.pt"),
                 "--ssl-epochs", "0", "--finetune", "prototypes", "--labels-per-class", "3", "--out", str(out),
                 "--no-progress", "--device", "cpu", "--stats-images", "16", "--heads", "contrastive"]) == 0
    model, payload = load_checkpoint(out)
    assert payload["spec"]["classifier"] == "cosine" and payload["meta"]["labeled_images"] == 12
    # the encoder is the self-supervised one, untouched: forward passes only
    for k, v in ssl_model.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(v, model.state_dict()[k]), k
    card = (tmp_path / "proto.md").read_text()
    assert "prototypes (forward passes only" in card
    # the rotation head --heads asks for by default was never trained: not kept, and the card says why
    assert ssl_model.spec.heads == model.spec.heads == ("contrastive",) and model.rot_fc is None
    assert "Not kept: the rotation head (never trained" in (tmp_path / "ssl.md").read_text()
    assert "Rotation accuracy" not in card
    assert "- Epochs: none in this run (the classifier is the class means)" in card and "joint" not in card
    assert f"the weights start from `{tmp_path / 'ssl.pt'}`: self-supervised by simclr for 1 epoch," in card
    assert 0 <= payload["meta"]["clean_error"] <= 100
    _err(capsys, ["train", "--labeled", str(data), "--out", str(tmp_path / "x.pt"), "--arch", "timm:test_resnet",
                  "--init", str(tmp_path / "ssl.pt"), "--epochs", "1", "--ssl-epochs", "0"], "differs from the architecture")


def test_a_finished_self_supervised_state_resumes_into_joint_fine_tuning(data, tmp_path):
    """The plan of resources/training-simclr: the 100-epoch SimCLR state (--finetune none) is resumed with
    --finetune joint; the encoder goes on from where the self-supervised phase left it."""
    logs = []
    Trainer(_cfg(data, tmp_path / "m.pt", finetune="none"), log=logs.append).fit()
    ssl_model, _ = load_checkpoint(tmp_path / "m.pt")
    trainer = Trainer(_cfg(data, tmp_path / "m.pt", finetune="joint", epochs=1), log=logs.append)
    assert trainer.load_state() and trainer.epoch == 1
    for k, v in ssl_model.state_dict().items():
        if k.startswith("trunk."):
            assert torch.equal(v, trainer.model.state_dict()[k]), k
    assert ssl_model.spec.heads == ("contrastive",)     # the checkpoint drops the untrained rotation head ...
    assert trainer.model.rot_fc is not None               # ... the state keeps it, for the joint phase to train
    meta = Trainer(_cfg(data, tmp_path / "m.pt", finetune="joint", epochs=1), log=logs.append).fit(resume=True)
    assert meta["finetune"] == "joint" and 0 <= meta["clean_error"] <= 100
    assert meta["trained_heads"] == ["rotation", "contrastive"] and "rotation_accuracy" in meta
    card = (tmp_path / "m.md").read_text()
    assert "| NT-Xent |" in card and "1 self-supervised + 1 joint fine-tuning" in card and "Not kept" not in card
    assert [h["phase"] for h in torch.load(tmp_path / "m.state.pt", weights_only=True)["history"]] == [1, 2]
    assert any(line.startswith("resumed from") for line in logs)


def test_an_older_checkpoint_with_an_untrained_head_passes_on_only_its_trained_ones(data, tmp_path):
    """Checkpoints written before heads were dropped kept a random rotation head beside a SimCLR-only phase:
    --init reads which heads its history trained."""
    from tttgui.training import init_trained_heads

    Trainer(_cfg(data, tmp_path / "ssl.pt", finetune="none"), log=lambda s: None).fit()
    payload = torch.load(tmp_path / "ssl.pt", weights_only=True)
    assert payload["meta"]["trained_heads"] == ["contrastive"]
    del payload["meta"]["trained_heads"]
    payload["spec"]["heads"] = ["rotation", "contrastive"]
    torch.save(payload, tmp_path / "old.pt")
    assert init_trained_heads(str(tmp_path / "old.pt")) == ("contrastive",)
    del payload["meta"]["history"]                        # weights from elsewhere: every head counts
    torch.save(payload, tmp_path / "bare.pt")
    assert init_trained_heads(str(tmp_path / "bare.pt")) == ("rotation", "contrastive")


def test_the_window_greys_out_methods_a_model_cannot_run(data, tmp_path, qtbot):
    """A SimCLR model has no rotation head: TTT is greyed out with the reason, and a window set to TTT switches
    to the first method that runs instead of showing nothing."""
    from PySide6.QtCore import Qt

    from test_gui import open_window
    from tttgui.gui.app import parse

    Trainer(_cfg(data, tmp_path / "ssl.pt", finetune="none"), log=lambda s: None).fit()
    out = tmp_path / "proto.pt"
    assert main(["train", "--labeled", str(data), "--test", str(data), "--init", str(tmp_path / "ssl.pt"),
                 "--ssl-epochs", "0", "--finetune", "prototypes", "--out", str(out), "--no-progress",
                 "--device", "cpu", "--stats-images", "16"]) == 0
    messages = []
    win = open_window(qtbot, parse(["--checkpoint", str(out), "--data", str(data),
                                    "--settings", str(tmp_path / "s.ini")]))
    try:
        panel = win.method_panel
        i = panel.names().index("ttt")
        assert not panel.method.model().item(i).isEnabled()
        assert "needs a model with the rotation head" in panel.method.itemData(i, Qt.ItemDataRole.ToolTipRole)
        assert panel.name() == "ttt++" and win.step_action.isEnabled()
        assert win.statusBar().currentMessage().endswith("has heads ['contrastive']: method set to TTT++ (align + contrastive, GN)")
        assert all(panel.method.model().item(k).isEnabled() for k in range(len(panel.names())) if k != i)
        with qtbot.waitSignal(win.run_done, timeout=60000):
            win.step()
        win.show_batch()                                      # the Batch tab's method list says the same
        ticks = {a.data(): a for a in win.batch_panel.methods.menu().actions()}
        assert not ticks["ttt"].isEnabled() and "rotation head" in ticks["ttt"].toolTip()
        win.batch_panel.choose(["fog"], ["5"], ["ttt", "tent"])
        assert win.batch_panel.methods.checked() == ["tent"]
        win.statusBar().messageChanged.connect(messages.append)
        with qtbot.waitSignal(win.model_loaded, timeout=60000):    # the supervised model: every method again
            win.load_checkpoint(str(_supervised(data, tmp_path)))
        assert panel.method.model().item(i).isEnabled() and panel.name() == "ttt++"
        assert all(a.isEnabled() for a in win.batch_panel.methods.menu().actions())
    finally:
        win.close()


def _supervised(data, tmp_path):
    out = tmp_path / "sup.pt"
    Trainer(_cfg(data, out, ssl="rotation", ssl_epochs=0, finetune="joint"), log=lambda s: None).fit()
    return out


def test_eval_methods_all_runs_what_the_model_can(data, tmp_path, capsys):
    """`--methods all` on a model without rotation head runs the others and says which it skipped; naming TTT
    is still refused in one line."""
    Trainer(_cfg(data, tmp_path / "ssl.pt", finetune="none"), log=lambda s: None).fit()
    out = tmp_path / "proto.pt"
    assert main(["train", "--labeled", str(data), "--test", str(data), "--init", str(tmp_path / "ssl.pt"),
                 "--ssl-epochs", "0", "--finetune", "prototypes", "--out", str(out), "--no-progress",
                 "--device", "cpu", "--stats-images", "16"]) == 0
    capsys.readouterr()
    common = ["eval", "--checkpoint", str(out), "--data", str(data), "--corruptions", "fog", "--limit", "2",
              "--steps", "1", "--device", "cpu", "--no-progress"]
    assert main(common + ["--methods", "all", "--views", "4", "--out", str(tmp_path / "ev")]) == 0
    err = capsys.readouterr().err
    assert "--methods all: skipping ttt (method ttt needs a model with the rotation head" in err
    methods = (tmp_path / "ev" / "summary.csv").read_text()
    assert "ttt++" in methods and "tent" in methods and ",ttt," not in methods
    _err(capsys, common + ["--methods", "source,ttt", "--out", str(tmp_path / "ev2")], "needs a model with the rotation")
