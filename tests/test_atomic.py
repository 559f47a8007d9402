"""tttgui.atomic: the one way the project writes files that must never be half-written."""
import os

import numpy as np
import pytest

from tttgui.atomic import atomic_path, write_bytes, write_text


def leftovers(folder):
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


def test_write_text_and_bytes(tmp_path):
    assert write_text(tmp_path / "sub" / "a.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
    assert write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "sub") == []


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = write_text(tmp_path / "run.json", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_temporary_keeps_the_suffix_for_writers_that_go_by_it(tmp_path):
    with atomic_path(tmp_path / "arrays.npz") as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == tmp_path
        np.savez(tmp, x=np.arange(3))
    assert np.load(tmp_path / "arrays.npz")["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays.npz"]


def test_mode_follows_the_umask_and_names_never_collide(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "x.csv") as a, atomic_path(tmp_path / "x.csv") as b:
            assert a != b      # two writers of one target (two processes, two threads) never share a file
            a.write_text("a")
            b.write_text("b")
    finally:
        os.umask(old)
    assert (tmp_path / "x.csv").read_text() == "a"    # the last rename wins, whole
    assert (tmp_path / "x.csv").stat().st_mode & 0o777 == 0o644
    assert leftovers(tmp_path) == []
