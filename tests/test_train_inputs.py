"""`tttgui train` and `tttgui stats` check their inputs and outputs before any work: one line each, and no
command writes over an input or the shipped model unless told to."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from test_training import synthetic_folder
from tttgui.cli import main
from tttgui.models import default_checkpoint_path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_folder(tmp_path_factory.mktemp("inputs") / "data", per_class=4)


def _one_line_error(capsys, argv, text):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, (argv, err)
    assert text in err and "Traceback" not in err and err.count("\n") == 1, err
    return err


def _train(data, out, *extra):
    return ["train", "--labeled", str(data), "--out", str(out), "--ssl-epochs", "0", "--epochs", "1",
            "--batch-size", "8", "--no-progress", "--device", "cpu", *extra]


@pytest.mark.parametrize("extra, text", [
    (["--threads", "-1"], "--threads -1 is invalid"),
    (["--threads", "0"], "--threads 0 is invalid"),
    (["--batch-size", "0"], "--batch-size 0 is invalid"),
    (["--batch-size", "-1"], "--batch-size -1 is invalid"),
    (["--lr", "-1"], "--lr -1.0 is invalid"),
    (["--lr", "nan"], "--lr nan is invalid"),
    (["--seed", "-1"], "--seed -1 is out of range"),
    (["--seed", str(2 ** 64 + 1)], "is out of range"),
    (["--heads", "rotation,bogus"], "unknown head(s) ['bogus']"),
    (["--ssl", "jigsaw"], "--ssl 'jigsaw' is not a known"),
    (["--test", "/missing/test"], "--test /missing/test not found"),
])
def test_bad_train_options_are_one_line_before_work(data, tmp_path, capsys, extra, text):
    _one_line_error(capsys, _train(data, tmp_path / "m.pt", *extra), text)
    assert list(tmp_path.iterdir()) == []      # nothing written: refused before the first epoch


def test_train_outputs_are_checked_before_work(data, tmp_path, capsys):
    _one_line_error(capsys, _train(data, tmp_path / "m.md"), "must end in .pt")
    (tmp_path / "folder.pt").mkdir()
    _one_line_error(capsys, _train(data, tmp_path / "folder.pt"), "is a folder")
    (tmp_path / "file").write_text("x")
    _one_line_error(capsys, _train(data, tmp_path / "file" / "m.pt"), "is a file; expected a folder")
    _one_line_error(capsys, _train(data, tmp_path / "m.pt", "--cache-dir", str(tmp_path / "file")),
                    "--cache-dir")
    _one_line_error(capsys, _train(data, default_checkpoint_path()), "shipped with tttgui")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if not os.access(ro, os.W_OK):       # root can write anywhere: the check is then moot
            _one_line_error(capsys, _train(data, ro / "m.pt"), "cannot write")
    finally:
        ro.chmod(0o755)


def test_train_refuses_to_replace_a_resumable_state_without_resume(data, tmp_path, capsys):
    assert main(_train(data, tmp_path / "m.pt")) == 0
    (tmp_path / "m.pt").unlink()
    state = (tmp_path / "m.state.pt").read_bytes()
    _one_line_error(capsys, _train(data, tmp_path / "m.pt", "--epochs", "2"), "expected --resume")
    assert (tmp_path / "m.state.pt").read_bytes() == state


def test_unlabeled_folder_cannot_be_fine_tuned(data, tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted((data / "c0").iterdir()):
        shutil.copy(f, flat / f.name)
    _one_line_error(capsys, _train(flat, tmp_path / "m.pt"), "has no class labels")


def test_huge_images_are_refused_before_decoding(tmp_path, capsys):
    for c in ("a", "b"):
        (tmp_path / "big" / c).mkdir(parents=True)
        Image.fromarray(np.zeros((3000, 4000, 3), np.uint8)).save(tmp_path / "big" / c / "0.png")
    _one_line_error(capsys, _train(tmp_path / "big", tmp_path / "m.pt"), "are 4000x3000")


def test_heads_may_be_empty_and_ssl_heads_are_kept(data, tmp_path):
    assert main(_train(data, tmp_path / "m.pt", "--heads", "", "--ssl-epochs", "1", "--ssl", "simclr")) == 0
    from tttgui.models import load_checkpoint
    _, payload = load_checkpoint(tmp_path / "m.pt")
    assert payload["spec"]["heads"] == ["contrastive"]


def test_a_path_with_undecodable_bytes_trains_and_writes_its_card(data, tmp_path):
    odd = os.fsdecode(bytes(tmp_path) + b"/\xff")
    shutil.copytree(data, odd)
    assert main(_train(odd, odd + ".pt")) == 0
    assert "\\xff" in (tmp_path / os.fsdecode(b"\xff.md")).read_text()
    # stats rewrites the card's source-statistics line with that path
    assert main(["stats", "--checkpoint", odd + ".pt", "--data", odd, "--images", "8", "--in-place",
                 "--device", "cpu"]) == 0
    assert "from `" in (tmp_path / os.fsdecode(b"\xff.md")).read_text()


def test_stats_never_writes_over_its_input_unless_told(data, tmp_path, capsys):
    ckpt = tmp_path / "m.pt"
    assert main(_train(data, ckpt)) == 0
    card = (tmp_path / "m.md").read_text()
    before = ckpt.read_bytes()
    args = ["stats", "--checkpoint", str(ckpt), "--data", str(data), "--images", "8", "--device", "cpu"]
    _one_line_error(capsys, args, "expected exactly one of --out")
    _one_line_error(capsys, args + ["--out", str(tmp_path / "m.md")], "must end in .pt")
    _one_line_error(capsys, args + ["--out", str(ckpt)], "is the input checkpoint")
    assert ckpt.read_bytes() == before and (tmp_path / "m.md").read_text() == card
    shipped = default_checkpoint_path().stat().st_mtime_ns
    _one_line_error(capsys, ["stats", "--data", str(data), "--images", "8"], "expected exactly one of --out")
    assert default_checkpoint_path().stat().st_mtime_ns == shipped
    assert main(args + ["--in-place"]) == 0 and ckpt.read_bytes() != before


def test_checkpoint_with_non_finite_source_statistics_is_refused(data, tmp_path, capsys):
    import torch

    from tttgui.errors import UserError
    from tttgui.models import load_checkpoint
    assert main(_train(data, tmp_path / "m.pt")) == 0
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    name = next(iter(payload["source_stats"]["norm"]))
    payload["source_stats"]["norm"][name]["loc_mean"][0] = float("nan")
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=f"non-finite source statistics \\(source_stats.norm.{name}.loc_mean\\)"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_closed_pipe_ends_quietly(data, tmp_path):
    import subprocess
    import sys
    ckpt = tmp_path / "m.pt"
    assert main(_train(data, ckpt)) == 0
    cmd = [sys.executable, "-m", "tttgui", "eval", "--checkpoint", str(ckpt), "--data", str(data), "--corruptions",
           "none", "--methods", "source", "--out", str(tmp_path / "ev"), "--no-progress", "--device", "cpu"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()        # the reader is gone before the first line is printed (like `| head -0`)
    err = p.stderr.read()
    p.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
