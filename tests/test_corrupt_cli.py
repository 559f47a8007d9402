"""`tttgui corrupt` writes the CIFAR-10-C release format."""
import json

import numpy as np

from conftest import CIFAR_TEST, FROST_DIR
from tttgui.cli import main
from tttgui.corruptions import corrupt
from tttgui.data import open_dataset


def test_release_format(tmp_path, capsys):
    out = tmp_path / "c"
    rc = main(["corrupt", "--data", str(CIFAR_TEST), "--out", str(out), "--limit", "7", "--corruptions",
               "fog,frost", "--severities", "1,2,3,4,5", "--seed", "5", "--frost-dir", str(FROST_DIR),
               "--device", "cpu", "--no-progress"])
    assert rc == 0
    images, labels = open_dataset(CIFAR_TEST).arrays(range(7))
    fog = np.load(out / "fog.npy")
    assert fog.shape == (35, 32, 32, 3) and fog.dtype == np.uint8
    assert np.array_equal(fog[2 * 7:3 * 7], corrupt(images, "fog", 3, seed=5))  # rows (s-1)N..sN
    lab = np.load(out / "labels.npy")
    assert lab.shape == (35,) and lab.dtype == np.uint8 and np.array_equal(lab, np.tile(labels, 5))
    meta = json.loads((out / "corrupt.json").read_text())
    assert meta["seed"] == 5 and meta["severities"] == [1, 2, 3, 4, 5] and "original" in meta["frost"]
    assert sorted(p.name for p in out.iterdir()) == ["corrupt.json", "fog.npy", "frost.npy", "labels.npy"]


def test_subset_of_severities(tmp_path):
    out = tmp_path / "c"
    assert main(["corrupt", "--data", str(CIFAR_TEST), "--out", str(out), "--limit", "4",
                 "--corruptions", "brightness", "--severities", "4,2", "--no-progress"]) == 0
    images, _ = open_dataset(CIFAR_TEST).arrays(range(4))
    b = np.load(out / "brightness.npy")
    assert b.shape == (8, 32, 32, 3) and np.array_equal(b[:4], corrupt(images, "brightness", 4))
    assert json.loads((out / "corrupt.json").read_text())["severities"] == [4, 2]
    assert np.load(out / "labels.npy").shape == (8,)


def test_bad_options_one_line(tmp_path, capsys):
    for argv, text in [(["--corruptions", "fogg"], "unknown name(s) fogg"),
                       (["--severities", "0,6"], "--severities '0,6' is not valid"),
                       (["--frost-dir", str(tmp_path)], "has no frost1.png")]:
        rc = main(["corrupt", "--data", str(CIFAR_TEST), "--out", str(tmp_path / "o"), "--limit", "2"] + argv)
        err = capsys.readouterr().err
        assert rc == 2 and text in err and "Traceback" not in err and err.count("\n") == 1
