"""`tttgui corrupt` output is self-describing (corrupt.json) and never silently wrong when read or reused."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import tttgui.corruptions
from conftest import CIFAR_TEST, ROOT
from tttgui.atomic import atomic_path
from tttgui.cli import main
from tttgui.corruptions import corrupt
from tttgui.data import list_corruptions, open_dataset
from tttgui.errors import UserError


def run_corrupt(out, *argv, data=CIFAR_TEST):
    return main(["corrupt", "--data", str(data), "--out", str(out), "--device", "cpu", "--no-progress", *argv])


def one_line(capsys, rc, *needles):
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def meta(out):
    return json.loads((out / "corrupt.json").read_text())


def clean(n, seed=0):
    """The images `tttgui corrupt --limit n --seed S` takes: a seeded spread over the set, in its order."""
    ds = open_dataset(CIFAR_TEST)
    return ds.arrays(np.sort(np.random.default_rng(seed).permutation(len(ds))[:n]))


def test_rows_follow_the_written_severities(tmp_path, capsys):
    out = tmp_path / "c"
    assert run_corrupt(out, "--limit", "5", "--corruptions", "brightness", "--severities", "1,3") == 0
    images, labels = clean(5)
    ds = open_dataset(out, severity=3)
    assert len(ds) == 5 and np.array_equal(ds.arrays()[0], corrupt(images, "brightness", 3))
    assert np.array_equal(ds.labels(), labels) and ds.severities == (1, 3)
    with pytest.raises(UserError, match=r"severity 2 is not in .*brightness.npy \(it holds severities 1, 3\)"):
        open_dataset(out, severity=2)
    assert run_corrupt(tmp_path / "one", "--limit", "4", "--corruptions", "brightness", "--severities", "1") == 0
    assert meta(tmp_path / "one")["images"] == 4   # 4 rows: not divisible by 5, still readable
    assert np.array_equal(open_dataset(tmp_path / "one", severity=1).arrays()[0], corrupt(clean(4)[0], "brightness", 1))


def test_unlabeled_images_give_an_unlabeled_release(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for k in range(3):
        Image.fromarray(np.full((32, 32, 3), 40 * k, np.uint8)).save(flat / f"{k}.png")
    out = tmp_path / "c"
    assert run_corrupt(out, "--corruptions", "brightness", "--severities", "2", data=flat) == 0
    assert not (out / "labels.npy").exists() and meta(out)["labeled"] is False
    ds = open_dataset(out, severity=2)
    assert ds.labels().tolist() == [-1, -1, -1] and ds.classes == []
    from tttgui.commands.corrupt import label_state

    assert label_state(np.array([-1, -1]), "d") is False
    with pytest.raises(UserError, match="1 images without a label"):
        label_state(np.array([0, -1]), "d")


def test_labels_outside_the_class_list_are_refused(tmp_path):
    out = tmp_path / "c"
    assert run_corrupt(out, "--limit", "4", "--corruptions", "brightness", "--severities", "1") == 0
    np.save(out / "labels.npy", np.arange(100, 104, dtype=np.uint8))
    with pytest.raises(UserError, match="label 103; expected labels below the 10 class names"):
        open_dataset(out, severity=1)
    bare = tmp_path / "official"   # no corrupt.json: the CIFAR-10-C download's convention
    bare.mkdir()
    np.save(bare / "fog.npy", np.zeros((50, 8, 8, 3), np.uint8))
    for bad in (np.arange(100, 110), np.full(10, 255)):
        np.save(bare / "labels.npy", np.tile(bad, 5).astype(np.uint8))
        with pytest.raises(UserError, match=f"label {bad.max()} and no class list"):
            open_dataset(bare, severity=1)


def test_an_existing_folder_is_refused_without_resume(tmp_path, capsys):
    out = tmp_path / "c"
    assert run_corrupt(out, "--limit", "4", "--corruptions", "fog", "--severities", "1") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    one_line(capsys, run_corrupt(out, "--limit", "3", "--corruptions", "brightness", "--severities", "1"),
             "already holds a finished release", "--resume", "another --out")
    one_line(capsys, run_corrupt(out, "--limit", "3", "--resume"), "--resume: images is 3 here but 4")
    one_line(capsys, run_corrupt(out, "--seed", "1", "--resume"), "--resume: seed is 1 here but 0")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    one_line(capsys, run_corrupt(foreign, "--limit", "2", "--corruptions", "fog"), "holds files but no corrupt.json",
             "notes.txt")


def test_an_interrupted_run_is_marked_refused_and_resumed(tmp_path, capsys, monkeypatch):
    out, calls = tmp_path / "c", []

    def stop_at_fog(images, name, severity, **kw):
        calls.append(name)
        if name == "fog":
            raise KeyboardInterrupt
        return corrupt(images, name, severity, **kw)

    monkeypatch.setattr(tttgui.corruptions, "corrupt", stop_at_fog)
    assert run_corrupt(out, "--limit", "4", "--corruptions", "brightness,fog", "--severities", "1,5",
                       "--seed", "3") == 130
    assert meta(out)["complete"] is False and list_corruptions(out) == ["brightness"]
    with pytest.raises(UserError, match="incomplete.*tttgui corrupt --resume"):
        open_dataset(out, corruption="brightness", severity=1)
    capsys.readouterr()
    one_line(capsys, run_corrupt(out, "--limit", "4"), "already holds an unfinished release", "--resume")

    monkeypatch.setattr(tttgui.corruptions, "corrupt", lambda *a, **kw: calls.append(a[1]) or corrupt(*a, **kw))
    calls.clear()
    assert run_corrupt(out, "--resume") == 0   # the folder's options: only fog is left to compute
    assert calls == ["fog", "fog"] and meta(out)["complete"] is True
    images, _ = clean(4, seed=3)
    fog = open_dataset(out, corruption="fog", severity=5).arrays()[0]
    assert np.array_equal(fog, corrupt(images, "fog", 5, seed=3))


def test_temporary_files_never_look_like_data(tmp_path, monkeypatch):
    names, save = [], np.save
    monkeypatch.setattr(np, "save", lambda f, a, *r, **kw: names.append(os.path.basename(f.name)) or save(f, a))
    out = tmp_path / "c"
    assert run_corrupt(out, "--limit", "2", "--corruptions", "brightness", "--severities", "1") == 0
    assert len(names) == 2 and not any(n.endswith(".npy") for n in names), names
    with atomic_path(out / "x.npy", keep_suffix=False) as tmp:
        assert not tmp.name.endswith(".npy") and tmp.name.startswith(".")
    (out / ".fog.1234-abcd.tmp.npy").write_bytes(b"half")   # what a killed writer of old left
    (out / "fog.tmp.npy").write_bytes(b"half")
    assert list_corruptions(out) == ["brightness"] and open_dataset(out, severity=1).corruption == "brightness"


def test_ascii_console_prints_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUTF8", "LC_CTYPE")}
    env.update(LC_ALL="C", LANG="C", PYTHONIOENCODING="ascii")
    proc = subprocess.run([sys.executable, "-m", "tttgui", "corrupt", "--data", str(CIFAR_TEST), "--out",
                           str(tmp_path / "sortie-\u00e9"), "--limit", "2", "--corruptions", "brightness",
                           "--severities", "1", "--device", "cpu"], cwd=ROOT, env=env, capture_output=True)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    assert b"wrote 1 corruption file(s)" in proc.stdout


def test_out_is_checked_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tttgui.corruptions, "corrupt", lambda *a, **kw: pytest.fail("corrupted before the check"))
    (tmp_path / "file").write_text("x")
    one_line(capsys, run_corrupt(tmp_path / "file" / "sub", "--corruptions", "fog"), "lies under the file")
    one_line(capsys, run_corrupt(tmp_path / "file", "--corruptions", "fog"), "is a file")
    # tests run as root, which chmod cannot stop: stand in for a read-only folder
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p).startswith(str(tmp_path)) else
                        real(p, mode, **kw))
    one_line(capsys, run_corrupt(tmp_path / "ro", "--corruptions", "fog"), "is not writable")
    assert not (tmp_path / "ro").exists()
