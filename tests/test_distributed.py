"""`torchrun -m tttgui eval`: two gloo processes on CPU give a single process's predictions; a rank that dies
stops the run in one line with the finished cells kept."""
import csv
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from tests.test_eval import setup  # noqa: F401 (fixture: the tiny depth-8 model and six images)
from tttgui.cli import main
from tttgui.distributed import World, open_store, plan
from tttgui.errors import UserError
from tttgui.evaluation import EvalConfig
from tttgui.methods import MethodConfig


@pytest.fixture
def root(setup):  # noqa: F811
    return setup[0]


def options(root, out, *extra):
    return ["eval", "--checkpoint", str(root / "ck.pt"), "--data", str(root / "data"), "--out", str(out),
            "--methods", "source,ttt", "--steps", "1", "--views", "2", "--seed", "3", "--threads", "1", *extra]


def torchrun(*args, script=None):
    """Two ranks on 127.0.0.1 (a free port), one torch thread each."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = [str(script)] if script else ["-m", "tttgui"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                           "127.0.0.1", "--master_port", str(port), *target, *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=240)


def rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def tttgui_lines(stderr):
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("tttgui eval:")]


@pytest.mark.parametrize("protocol, extra", [
    ("episodic", ["--corruptions", "none"]),
    ("online", ["--corruptions", "gaussian_noise", "--severities", "1,2"]),
])
def test_two_ranks_give_a_single_process_predictions(root, tmp_path, protocol, extra):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(options(root, one, "--protocol", protocol, "--no-progress", *extra)) == 0
    done = torchrun(*options(root, two, "--protocol", protocol, *extra))
    assert done.returncode == 0, done.stderr[-3000:]
    assert rows(two / "images.csv") == rows(one / "images.csv")
    assert (two / "summary.csv").read_text() == (one / "summary.csv").read_text()
    names = [sorted(p.name for p in (out / "cells").glob("*.csv")) for out in (one, two)]
    assert names[0] == names[1]
    assert json.loads((two / "run.json").read_text())["complete"] is True
    total = 6 * 2 * (1 if protocol == "episodic" else 2)
    bars = [line for line in done.stderr.replace("\r", "\n").splitlines() if f"{total}/{total}" in line]
    assert bars and all(line.startswith("eval: 100%") for line in bars)   # one bar, rank 0's, counting both ranks
    assert "wrote" in done.stdout and done.stdout.count("wrote") == 1   # rank 0 alone writes and reports


DYING = """
import os, sys
from tttgui import distributed, evaluation
from tttgui.cli import main

distributed.HEARTBEAT_TIMEOUT = 3.0

if os.environ["RANK"] == "1":   # rank 1 dies (as a kill -9 would) at the start of its second cell
    cells, run = [], evaluation.run_online

    def dying(cell):
        cells.append(cell)
        if len(cells) == 2:
            os._exit(3)
        return run(cell)
    evaluation.run_online = dying
sys.exit(main(sys.argv[1:]))
"""


def test_a_rank_that_dies_stops_the_run_in_one_line_and_keeps_finished_cells(root, tmp_path):
    script = tmp_path / "dying.py"
    script.write_text(DYING)
    out, extra = tmp_path / "out", ["--protocol", "online", "--corruptions", "gaussian_noise", "--severities", "1,2",
                                    "--no-progress"]
    done = torchrun(*options(root, out, *extra), script=script)
    assert done.returncode != 0
    lines = tttgui_lines(done.stderr)
    assert len(lines) == 1 and "cells finished" in lines[0] and "--resume" in lines[0], done.stderr[-3000:]
    cells = {p.name for p in (out / "cells").glob("*.csv")}
    # rank 0 runs the source cells, rank 1 the ttt cells: rank 1's first cell was finished before it died
    assert "gaussian_noise-1-ttt.csv" in cells and "gaussian_noise-2-ttt.csv" not in cells
    assert json.loads((out / "run.json").read_text())["complete"] is False
    assert len(rows(out / "summary.csv")) == len(cells)
    changed = torchrun(*options(root, out, *extra, "--resume", "--steps", "2"))
    assert changed.returncode != 0 and len(tttgui_lines(changed.stderr)) == 1, changed.stderr[-3000:]
    assert "--resume: steps is 2 now but was 1" in changed.stderr
    # the ranks continue the run (rank 0 reads the finished cells back) and end with an uninterrupted run's files
    resumed = torchrun(*options(root, out, *extra, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming: {len(cells)} finished cell(s)" in resumed.stderr
    assert main(options(root, tmp_path / "whole", *extra)) == 0
    assert rows(out / "images.csv") == rows(tmp_path / "whole" / "images.csv")


def test_plan_splits_episodic_cells_into_blocks_and_gives_online_cells_whole():
    keys = [("fog", 5, "source"), ("fog", 5, "ttt"), ("snow", 5, "ttt")]
    parts = plan(keys, episodic=True, n=5, size=2)
    assert parts[keys[0]] == [(0, 0, 2), (1, 2, 5)] or parts[keys[0]] == [(0, 0, 3), (1, 3, 5)]
    assert plan(keys, episodic=True, n=1, size=2)[keys[0]] == [(1, 0, 1)] or \
        plan(keys, episodic=True, n=1, size=2)[keys[0]] == [(0, 0, 1)]
    assert plan(keys, episodic=False, n=5, size=2) == {keys[0]: [(0, 0, 5)], keys[1]: [(1, 0, 5)],
                                                       keys[2]: [(0, 0, 5)]}


def test_continual_and_bad_rank_variables_are_one_line(tmp_path):
    cfg = EvalConfig(settings=MethodConfig(protocol="continual"))
    with pytest.raises(UserError, match="continual"):
        open_store(tmp_path, World(0, 2, 0), torch.device("cpu"), cfg, 4)
    with pytest.raises(UserError, match="WORLD_SIZE"):
        World.from_env({"RANK": "0", "WORLD_SIZE": "two"})


def test_without_torchrun_a_rank_that_stops_answering_is_given_up(root, tmp_path):
    """Ranks started by another launcher (here by hand; srun alike): rank 0 hosts the store and gives rank 1 up
    after HEARTBEAT_TIMEOUT seconds without a heartbeat."""
    script = tmp_path / "dying.py"
    script.write_text(DYING)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out, extra = tmp_path / "out", ["--protocol", "online", "--corruptions", "gaussian_noise", "--severities", "1,2",
                                    "--no-progress"]
    ranks = [subprocess.Popen([sys.executable, str(script), *options(root, out, *extra)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "RANK": str(r),
                                   "LOCAL_RANK": str(r), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                                   "MASTER_PORT": str(port)}) for r in (0, 1)]
    _, err = ranks[0].communicate(timeout=120)
    ranks[1].communicate(timeout=30)
    assert ranks[0].returncode == 1 and ranks[1].returncode == 3
    lines = tttgui_lines(err)
    assert len(lines) == 1 and "rank 1 stopped answering (3 s without a heartbeat)" in lines[0], err[-3000:]
    assert "gaussian_noise-1-ttt.csv" in {p.name for p in (out / "cells").glob("*.csv")}
    assert json.loads((out / "run.json").read_text())["complete"] is False
