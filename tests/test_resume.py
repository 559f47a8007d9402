"""Resumable evaluation (issue 19 item 3): cells written as they finish, Ctrl+C keeps them with a summary,
--resume continues to the files an uninterrupted run writes, a changed configuration is refused in one line."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from test_eval import read, run_cli, setup  # noqa: F401 (setup: the tiny checkpoint and data)
from tests.conftest import ROOT

import tttgui.evaluation as ev


def strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def same_files(a, b):
    assert strip(read(a / "images.csv")) == strip(read(b / "images.csv"))
    assert read(a / "summary.csv") == read(b / "summary.csv")


def interrupt_at(k: int, monkeypatch):
    """The engine's k-th cell raises KeyboardInterrupt (Ctrl+C); returns (the cells started, the real runner)."""
    calls, real = [], ev.runner

    def interrupted(cell):
        calls.append(cell.name)
        if len(calls) == k:
            raise KeyboardInterrupt
        return real(cell)
    monkeypatch.setattr(ev, "runner", interrupted)
    return calls, real


def test_ctrl_c_keeps_cells_and_resume_finishes_the_same_run(setup, tmp_path, monkeypatch, capsys):
    root, _, _ = setup
    assert run_cli(root, tmp_path / "full") == 0
    calls, real = interrupt_at(3, monkeypatch)
    out = tmp_path / "run"
    assert run_cli(root, out) == 130
    err = capsys.readouterr().err
    assert "2 of 3 cells finished" in err and "--resume" in err
    assert [r["method"] for r in read(out / "summary.csv")] == ["source", "ttt"]
    assert len(read(out / "images.csv")) == 12
    info = json.loads((out / "run.json").read_text())
    assert info["complete"] is False and info["cells"] == {"finished": 2, "total": 3}
    assert len(list((out / "cells").glob("*.csv"))) == 2

    # without --resume the unfinished run is not thrown away; a changed option is named in one line
    for extra, needle in (((), "unfinished run"), (("--resume", "--steps", "3"), "steps is 3 now but was 2")):
        assert run_cli(root, out, *extra) == 2
        line = capsys.readouterr().err.strip()
        assert line.count("\n") == 0 and needle in line and "expected" in line, line

    calls.clear()
    assert run_cli(root, out, "--resume") == 0
    assert len(calls) == 1                          # only the missing cell was computed
    same_files(out, tmp_path / "full")
    assert json.loads((out / "run.json").read_text())["complete"] is True
    monkeypatch.undo()
    assert run_cli(root, out) == 0                  # a finished run may be replaced by a new one


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_kill_9_loses_at_most_the_cells_in_flight(setup, tmp_path):
    root, _, _ = setup
    args = ["eval", "--device", "cpu",
            "--checkpoint", str(root / "ck.pt"), "--data", str(root / "data"), "--corruptions", "none",
            "--methods", "ttt,tent,actmad", "--steps", "8", "--views", "4", "--no-progress", "--threads", "1"]
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tttgui", *args, "--out", str(out)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not list((out / "cells").glob("*.csv")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    finished = list((out / "cells").glob("*.csv"))
    assert 1 <= len(finished) < 3 and not (out / "summary.csv").exists()
    for p in finished:                              # every kept cell is whole: 6 rows
        assert len(read(p)) == 6
    resumed = subprocess.run([sys.executable, "-m", "tttgui", *args, "--out", str(out), "--resume"], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    from tttgui.cli import main
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    same_files(out, tmp_path / "whole")


def test_resume_refuses_cells_made_under_another_method_default(setup, tmp_path, monkeypatch, capsys):
    """The fingerprint holds the recipes as resolved: after a code change to TTT's paper lr, --resume must not mix
    cells of the old lr with new ones (the typed settings, all defaults, are unchanged)."""
    from tttgui.methods.ttt import TTT

    root, _, _ = setup
    calls, real = interrupt_at(2, monkeypatch)
    out = tmp_path / "run"
    assert run_cli(root, out) == 130
    capsys.readouterr()
    monkeypatch.setattr(ev, "runner", real)
    monkeypatch.setattr(TTT, "episodic", {**TTT.episodic, "lr": 5e-3})
    assert run_cli(root, out, "--resume") == 2
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0 and "recipes ttt lr is 0.005 now but was 0.001" in line and "expected" in line, line
