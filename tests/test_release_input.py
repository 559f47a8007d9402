"""tttgui eval on a corruption release (issue 19 item 2): the official CIFAR-10-C layout or what tttgui corrupt
writes; files and row blocks picked by --corruptions / --severities, nothing corrupted twice; bad releases are
one line."""
import json

import numpy as np
import pytest

from test_eval import read, setup  # noqa: F401 (setup: the tiny checkpoint and data)
from tttgui.cli import main
from tttgui.corruptions import corrupt
from tttgui.data import open_dataset

import tttgui.evaluation as ev


def eval_cli(root, data, out, *extra):
    return main(["eval", "--device", "cpu", "--checkpoint", str(root / "ck.pt"), "--data", str(data), "--out", str(out),
                 "--methods", "source,ttt", "--steps", "1", "--views", "4", "--no-progress", *extra])


def release(root, folder, corruptions=("fog", "contrast"), severities=(1, 2, 3, 4, 5)):
    """A release made from the tiny clean data as tttgui eval would corrupt it (seed 0)."""
    images, labels = open_dataset(root / "data").arrays()
    folder.mkdir()
    for c in corruptions:
        np.save(folder / f"{c}.npy", np.concatenate([corrupt(images, c, s, seed=0) for s in severities]))
    np.save(folder / "labels.npy", np.tile(labels, len(severities)))
    return folder


def test_release_gives_the_rows_of_clean_data_corrupted_once(setup, tmp_path, monkeypatch):
    root, _, _ = setup
    rel = release(root, tmp_path / "cifar10-c")
    assert eval_cli(root, root / "data", tmp_path / "clean", "--corruptions", "fog,contrast",
                    "--severities", "2,5") == 0
    monkeypatch.setattr(ev, "corrupt_images", lambda *a: pytest.fail("a release was corrupted again"))
    assert eval_cli(root, rel, tmp_path / "rel", "--corruptions", "fog,contrast", "--severities", "2,5") == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read(tmp_path / "rel" / "images.csv")) == strip(read(tmp_path / "clean" / "images.csv"))
    info = json.loads((tmp_path / "rel" / "run.json").read_text())
    assert info["input"]["kind"] == "release" and info["input"]["corruptions"] == ["contrast", "fog"]
    assert json.loads((tmp_path / "clean" / "run.json").read_text())["input"]["kind"] == "clean"
    # one file as --data, and 'all' takes the standard corruptions the release holds
    assert eval_cli(root, rel / "fog.npy", tmp_path / "one", "--severities", "2") == 0
    assert {r["corruption"] for r in read(tmp_path / "one" / "summary.csv")} == {"fog"}
    assert eval_cli(root, rel, tmp_path / "all", "--severities", "5") == 0
    assert [r["corruption"] for r in read(tmp_path / "all" / "summary.csv")][::2] == ["fog", "contrast"]


def test_bad_releases_are_one_line(setup, tmp_path, capsys):
    root, _, _ = setup
    rel = release(root, tmp_path / "ok", corruptions=("fog",))
    short = release(root, tmp_path / "short", corruptions=("fog",))
    np.save(short / "labels.npy", np.zeros(7, np.int64))
    flat = release(root, tmp_path / "flat", corruptions=("fog",))
    np.save(flat / "fog.npy", np.zeros((30, 16, 16), np.uint8))
    mixed = release(root, tmp_path / "mixed", corruptions=("fog",))
    np.save(mixed / "contrast.npy", np.zeros((5 * 4, 16, 16, 3), np.uint8))
    two = release(root, tmp_path / "two", corruptions=("fog",), severities=(2, 4))
    (two / "corrupt.json").write_text(json.dumps({"corruptions": ["fog"], "severities": [2, 4], "images": 6,
                                                  "complete": True, "labeled": True, "classes": []}))
    for data, extra, needle in (
            (short, ["--corruptions", "fog"], "labels.npy"),
            (flat, ["--corruptions", "fog"], "fog.npy holds uint8 of shape (30, 16, 16)"),
            (mixed, ["--corruptions", "fog,contrast"], "contrast.npy"),
            (release(root, tmp_path / "pair"), ["--corruptions", "none"], "holds 2 corruptions"),
            (rel, ["--corruptions", "none,fog"], "none alone"),
            (rel, ["--corruptions", "snow"], "'snow' is not in"),
            (two, ["--corruptions", "fog", "--severities", "3"], "severity 3 is not in")):
        assert eval_cli(root, data, tmp_path / "x", *extra) == 2, (data, extra)
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and needle in err and "expected" in err, err
