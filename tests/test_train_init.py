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


def test_resumes_that_would_make_the_card_false_are_refused():
    """Epochs that already ran cannot be un-run: fewer self-supervised or fine-tuning epochs than done (the card
    said "2 joint + 3 averaged" after 3 joint and 2 averaged), or another fine-tuning kind once it began (joint rows
    labelled linear). Before fine-tuning begins, its kind may change (the SimCLR run went none -> joint)."""
    from tttgui.errors import UserError
    from tttgui.training import refuse_other_run

    old = {"ssl_epochs": 2, "epochs": 5, "finetune": "joint"}
    new = lambda **kw: {**old, **kw}     # noqa: E731
    for epoch, change, needle in ((5, {"epochs": 2}, "3 fine-tuning epochs done; expected --epochs 3 or more"),
                                  (5, {"finetune": "linear"}, "began as joint; expected --finetune joint"),
                                  (2, {"ssl_epochs": 1}, "2 self-supervised epochs done; expected --ssl-epochs 2")):
        with pytest.raises(UserError, match=needle):
            refuse_other_run("s.pt", old, new(**change), epoch)
    refuse_other_run("s.pt", old, new(finetune="full", epochs=9), 2)    # phase 1 done, fine-tuning not begun
    refuse_other_run("s.pt", old, new(epochs=3), 5)                     # 3 done, 3 asked: averaging may start
    refuse_other_run("s.pt", old, new(ssl_epochs=4), 1)                 # a longer phase 1 before it ended


def test_a_probe_is_of_phase_1_weights_and_a_resume_keeps_what_init_was(data, tmp_path):
    """Phase 1 ended in a run without --test: a resume with --test must not probe the fine-tuned weights and call
    it the self-supervised features' error. A resume after --init's file was replaced (shipped over) describes the
    classifier it started with, not the file's new one."""
    out = tmp_path / "p.pt"
    Trainer(_cfg(data, out, test=None, epochs=1), log=lambda s: None).fit()
    logs = []
    Trainer(_cfg(data, out, epochs=1), log=logs.append).fit(resume=True)
    assert "linear_probe" not in load_checkpoint(out)[1]["meta"] and any("no linear probe" in s for s in logs)
    ssl, ft = tmp_path / "s.pt", tmp_path / "j.pt"
    Trainer(_cfg(data, ssl, finetune="none"), log=lambda s: None).fit()
    Trainer(_cfg(data, ft, init=str(ssl), ssl_epochs=0), log=lambda s: None).fit()
    assert "classifier fresh (the checkpoint's classifier was never trained)" in ft.with_suffix(".md").read_text()
    shutil.copy(ft, ssl)
    Trainer(_cfg(data, ft, init=str(ssl), ssl_epochs=0, swa_epochs=1), log=lambda s: None).fit(resume=True)
    card = ft.with_suffix(".md").read_text()
    assert "classifier fresh (the checkpoint's classifier was never trained)" in card and "row by class" not in card


def test_simclr_views_are_drawn_in_float32_under_bf16(data, tmp_path, monkeypatch):
    """bf16 autocast is for convolutions and matmuls (the card says so): the views' crop grid and colour jitter in
    bfloat16 moved pixels by up to 12/255."""
    import tttgui.training as training

    seen = []

    def views(x, gen):
        seen.append((torch.is_autocast_enabled("cpu"), x.dtype))
        return real(x, gen)
    real = training.simclr_views
    monkeypatch.setattr(training, "simclr_views", views)
    Trainer(_cfg(data, tmp_path / "b.pt", finetune="none", precision="bf16", test=None), log=lambda s: None).fit()
    assert seen and set(seen) == {(False, torch.float32)}


def test_the_card_s_batch_test_and_fine_tuning_lines_are_the_run_s(data, tmp_path):
    out = tmp_path / "c.pt"
    Trainer(_cfg(data, out, test=None, ssl_batch_size=128, heads=(), ssl="rotation", ssl_epochs=0, limit=6),
            log=lambda s: None).fit()
    card = out.with_suffix(".md").read_text()
    assert "- Test data: none (no error measured)" in card and "`None`" not in card
    assert "- Fine-tuning: joint, with no self-supervised head: cross-entropy alone" in card
    out = tmp_path / "d.pt"
    Trainer(_cfg(data, out, test=None, ssl_batch_size=128, finetune="none", limit=6), log=lambda s: None).fit()
    assert "- Self-supervised phase: simclr, batch 6," in out.with_suffix(".md").read_text()
