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


def test_a_chain_of_init_runs_keeps_each_start_s_record(data, tmp_path):
    """Fine-tuning on from a fine-tuned checkpoint (more joint epochs), then shipping the result over the start:
    the new checkpoint keeps its start's record (and that one's start's), so its card and docs/ssl.md still
    count every run's epochs and hours after the start file was replaced."""
    from tests.conftest import load_benchmark

    ssl, ft, more = tmp_path / "ssl.pt", tmp_path / "ft.pt", tmp_path / "more.pt"
    Trainer(_cfg(data, ssl, finetune="none"), log=lambda s: None).fit()
    Trainer(_cfg(data, ft, init=str(ssl), ssl_epochs=0, epochs=2, swa_epochs=1), log=lambda s: None).fit()
    Trainer(_cfg(data, more, init=str(ft), ssl_epochs=0, epochs=1, swa_epochs=2), log=lambda s: None).fit()
    shutil.copy(more, ft)                    # shipped over its start
    ssl.unlink()
    meta = load_checkpoint(ft)[1]["meta"]
    assert meta["init_record"]["path"] == str(ft) and meta["init_record"]["init_record"]["path"] == str(ssl)
    card = more.with_suffix(".md").read_text()
    assert "fine-tuning joint for 2 epochs + 1 averaged" in card and f"it started from `{ssl}`" in card, card
    table = load_benchmark("ssl_table")
    assert table.epochs(meta) == "1 + 3 + 3"
    # hours: the joint start's are fine-tuning, not self-supervised (its own start's phase 1 is)
    chain = {"train_seconds": 3600.0, "history": [{"phase": 2, "seconds": 3600.0}],
             "init_record": {"train_seconds": 7200.0, "history": [{"phase": 2, "seconds": 7200.0}],
                             "init_record": {"train_seconds": 36000.0, "history": [{"phase": 1, "seconds": 36000.0}]}}}
    assert table.training_hours(chain) == "13.00 (10.00 self-supervised)"
    # the probe is the SimCLR start's, two runs back
    card = more.with_suffix(".md").read_text()
    assert f"(the features of the self-supervised start `{ssl}` after phase 1" in card, card
    assert "; with the runs it started from, " in card
