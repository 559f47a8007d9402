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
    ds = open_dataset(CIFAR_TEST)   # --limit: a seeded spread over the set (the first 7 would all be airplanes)
    images, labels = ds.arrays(np.sort(np.random.default_rng(5).permutation(len(ds))[:7]))
    assert len(set(labels.tolist())) > 1
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
    ds = open_dataset(CIFAR_TEST)
    images, _ = ds.arrays(np.sort(np.random.default_rng(0).permutation(len(ds))[:4]))
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


def test_resume_refuses_other_frost_textures_before_frost_is_written(tmp_path):
    """A release begun with the original textures and resumed without --frost-dir wrote frost.npy from the
    generated texture while corrupt.json still named the original ones."""
    out = tmp_path / "c"
    base = ["corrupt", "--data", str(CIFAR_TEST), "--out", str(out), "--limit", "3", "--corruptions", "fog,frost",
            "--severities", "5", "--no-progress"]
    assert main(base + ["--frost-dir", str(FROST_DIR)]) == 0
    (out / "frost.npy").unlink()                          # as if stopped before frost
    meta = json.loads((out / "corrupt.json").read_text())
    (out / "corrupt.json").write_text(json.dumps({**meta, "complete": False}))
    assert main(base + ["--resume", "--frost-dir", ""]) == 2
    assert not (out / "frost.npy").exists()
