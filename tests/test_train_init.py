"""`tttgui train`'s choices a user could get silently wrong: --init's classifier by class name, empty classes,
networks nobody trained, options an --init run ignored, and what the card says of them."""
import shutil

import pytest
import torch

from test_ssl import _cfg
from test_training import synthetic_folder
from tttgui.cli import main
from tttgui.models import ModelSpec, build_model, load_checkpoint, save_checkpoint
from tttgui.training import Trainer, start_from

SMALL = {"depth": 8, "width": 1, "norm": "gn"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_folder(tmp_path_factory.mktemp("init") / "data", per_class=6)


def _checkpoint(path, classes, meta=None, classifier="linear"):
    torch.manual_seed(1)
    model = build_model(ModelSpec(num_classes=len(classes), heads=(), arch_args=SMALL, classifier=classifier))
    with torch.no_grad():
        model.fc.weight.copy_(torch.arange(len(classes), dtype=torch.float32)[:, None].expand_as(model.fc.weight))
    save_checkpoint(path, model, classes, meta=meta or {"finetune": "joint"})
    return model


def test_init_classifier_rows_go_by_class_name(tmp_path):
    """A checkpoint of the same classes in another order: its rows follow the names (copied by position, a
    renamed folder scored 98 % error); other classes or an untrained or cosine classifier: a fresh one."""
    _checkpoint(tmp_path / "rev.pt", ["c3", "c2", "c1", "c0"])
    model = build_model(ModelSpec(num_classes=4, heads=(), arch_args=SMALL))
    how = start_from(model, str(tmp_path / "rev.pt"), ["c0", "c1", "c2", "c3"])
    assert "by class name (reordered)" in how
    assert model.fc.weight[:, 0].tolist() == [3.0, 2.0, 1.0, 0.0]
    for classes, meta, classifier, said in ((["x", "y", "z", "w"], None, "linear", "other classes"),
                                            (["c0", "c1", "c2", "c3"], {"finetune": "none"}, "linear", "never trained"),
                                            (["c0", "c1", "c2", "c3"], None, "cosine", "cosine prototype")):
        _checkpoint(tmp_path / "o.pt", classes, meta, classifier)
        model = build_model(ModelSpec(num_classes=4, heads=(), arch_args=SMALL))
        fresh = model.fc.weight.detach().clone()
        how = start_from(model, str(tmp_path / "o.pt"), ["c0", "c1", "c2", "c3"])
        assert said in how and torch.equal(model.fc.weight, fresh), said


def test_an_empty_class_folder_is_refused_and_a_short_class_is_named(data, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    for f in (copy / "c2").iterdir():
        f.unlink()
    argv = ["train", "--labeled", str(copy), "--out", str(tmp_path / "m.pt"), "--ssl-epochs", "0", "--epochs", "1",
            "--no-progress", "--device", "cpu"]
    assert main(argv + ["--labels-per-class", "2"]) == 2
    err = capsys.readouterr().err
    assert "no images of class 'c2'" in err and err.count("\n") == 1, err
    assert main(["train", "--labeled", str(data), "--out", str(tmp_path / "m.pt"), "--ssl-epochs", "0",
                 "--labels-per-class", "7", "--no-progress", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "class 'c0' has only 6 labeled images" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("finetune", ["none", "prototypes"])
def test_a_network_nobody_trained_is_not_written(data, tmp_path, capsys, finetune):
    assert main(["train", "--labeled", str(data), "--out", str(tmp_path / "m.pt"), "--ssl-epochs", "0",
                 "--finetune", finetune, "--no-progress", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "nobody trained" in err and "--init" in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_init_refuses_another_norm_and_linear_says_epochs_are_unused(data, tmp_path, capsys):
    _checkpoint(tmp_path / "gn.pt", ["c0", "c1", "c2", "c3"])
    base = ["train", "--labeled", str(data), "--out", str(tmp_path / "m.pt"), "--ssl-epochs", "0",
            "--init", str(tmp_path / "gn.pt"), "--no-progress", "--device", "cpu", "--stats-images", "8"]
    assert main(base + ["--norm", "bn"]) == 2
    err = capsys.readouterr().err
    assert "--norm bn differs from the normalisation of --init" in err and "(gn)" in err and err.count("\n") == 1
    assert main(base + ["--norm", "gn", "--finetune", "linear", "--epochs", "7", "--swa-epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "--epochs 7 and --swa-epochs 3 not used" in out
    card = (tmp_path / "m.md").read_text()       # no phase 1 here: the unlabeled set is not this run's
    assert "- Unlabeled data: none in this run (no phase 1, see --init's card)" in card


def test_the_card_names_the_probe_s_test_set_batch_and_phase(data, tmp_path):
    """A resume with another --test: the probe's line says which set it was measured on; a run of 24 labels
    says batch 24, not 128; `full` epochs are not called joint; a short run's wall time is in seconds."""
    out = tmp_path / "m.pt"
    Trainer(_cfg(data, out, finetune="full", heads=(), labels_per_class=6, batch_size=128, epochs=1),
            log=lambda s: None).fit()
    card = out.with_suffix(".md").read_text()
    assert "batch 24," in card and "| 2 | full |" in card and " s on cpu" in card and "| joint |" not in card
    other = tmp_path / "other"
    shutil.copytree(data, other)
    Trainer(_cfg(data, out, finetune="full", heads=(), labels_per_class=6, batch_size=128, epochs=2,
                 test=str(other)), log=lambda s: None).fit(resume=True)
    card = out.with_suffix(".md").read_text()
    assert f"test images of `{data}`" in card, card
    _, payload = load_checkpoint(out)
    assert payload["meta"]["linear_probe"]["test"] == str(data)
