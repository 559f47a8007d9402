"""benchmarks/queue.sh: the long jobs in order, each stage once, what ships copied to resources/, a new checkout
(no runs/, the committed markers and training states) going on where the last session stopped and never writing
the self-supervised model again. Run with a stub interpreter that records each command."""
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT

STUB = r"""#!/usr/bin/env bash
# records the command; `train ... --out X` writes X and its card, like tttgui train
echo "$*" >> "$QUEUE_LOG"
[ -n "${QUEUE_FAIL:-}" ] && [[ "$*" == *"$QUEUE_FAIL"* ]] && exit 1
prev=""
for a in "$@"; do
    if [ "$prev" = "--out" ]; then mkdir -p "$(dirname "$a")"; echo pt > "$a"; echo card > "${a%.pt}.md"; fi
    prev="$a"
done
exit 0
"""


def _tree(tmp_path):
    root = tmp_path / "repo"
    (root / "benchmarks").mkdir(parents=True)
    shutil.copy(ROOT / "benchmarks" / "queue.sh", root / "benchmarks" / "queue.sh")
    state = root / "resources" / "training-simclr"
    state.mkdir(parents=True)
    (state / "resnet26_gn_simclr_cifar10.state.pt").write_text("state")
    (state / "train.log").write_text("epoch 37\n")
    stub = tmp_path / "py"
    stub.write_text(STUB)
    stub.chmod(0o755)
    return root, stub


def _kind(call: str) -> str:
    for script in ("ssl_table", "results_ssl", "results", "lower_error"):
        if f"benchmarks/{script}.py" in call:
            return script
    for key, kind in (("simclr_more", "more"), ("--finetune none", "simclr"), ("--finetune joint --epochs 40", "joint"),
                      ("--labels-per-class 30", "protos30"), ("prototypes", "protos"),
                      ("supervised_10pc", "sup10"), ("simclr_10pc", "simclr10")):
        if key in call:
            return kind
    return call


def _run(root, stub, log, fail=""):
    env = {**os.environ, "PY": str(stub), "QUEUE_LOG": str(log), "QUEUE_FAIL": fail}
    return subprocess.run(["bash", str(root / "benchmarks" / "queue.sh")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_queue_runs_each_stage_once_in_order_and_ships_its_models(tmp_path):
    root, stub = _tree(tmp_path)
    log = tmp_path / "calls.log"
    done = _run(root, stub, log)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    kinds = [_kind(c) for c in calls]
    assert kinds == ["simclr", "protos", "protos30", "results_ssl", "results", "joint", "sup10", "simclr10",
                     "ssl_table", "ssl_table", "ssl_table", "more", "lower_error", "ssl_table", "ssl_table", "ssl_table",
                     "results", "results_ssl"]
    # more joint epochs start from the shipped model's averaged weights, and ship over it only when better
    more = calls[kinds.index("more")]
    assert "--init resources/resnet26_gn_simclr_cifar10.pt" in more and "--ssl-epochs 0 --finetune joint" in more
    assert calls[kinds.index("lower_error")].endswith(
        "resources/training-simclr/resnet26_gn_simclr_more_cifar10.pt resources/resnet26_gn_simclr_cifar10.pt")
    assert "--ttt-online-all" in calls[-2] and "--ttt-online-all" not in calls[4]   # the full TTT-Online row, late
    table = [c for c in calls if "ssl_table" in c]      # two one-thread shards share the cells, then the page
    assert sorted(c.split("--shard ")[-1] for c in table[:2]) == ["0/2", "1/2"] and "--shard" not in table[2]
    assert sorted(table[3:5]) == sorted(table[:2]) and table[5] == table[2]     # the shards log in either order
    assert all(c.count("--model ") == 4 and "--out docs/ssl.md --cells benchmarks/ssl_cells" in c for c in table)
    assert all("--precision bf16" in c for c in calls if "tttgui train" in c) and "--resume" in calls[0]
    assert "--out resources/training-simclr/resnet26_gn_simclr_cifar10.pt" in calls[0]   # resumes the committed state
    assert (root / "resources" / "training-simclr" / "resnet26_gn_simclr_cifar10.state.pt").read_text() == "state"
    tenth = [c for c in calls if "10pc" in c]   # the 10 %-label runs keep their state beside the SimCLR run's
    assert len(tenth) == 8 and all("resources/training-tenth/resnet26_gn_" in c for c in tenth)
    assert sorted(m.name for m in (root / "benchmarks" / "queue_done").iterdir()) == sorted(
        f"{k}.done" for k in ("simclr", "prototypes", "results_ssl", "results", "joint", "supervised10", "simclr10",
                              "ssl_table", "simclr_more", "ssl_table_more", "long_heldout",
                              "ttt_online_all"))
    for name in ("resnet26_gn_simclr_ssl_cifar10", "resnet26_gn_simclr_prototypes_cifar10",
                 "resnet26_gn_simclr_cifar10"):
        assert (root / "resources" / f"{name}.pt").is_file()
        assert (root / "resources" / f"{name}.md").read_text() == f"# Model card: {name}.pt\n"   # retitled
    assert "--init resources/resnet26_gn_simclr_ssl_cifar10.pt" in calls[1]
    assert "all labels=resources/resnet26_gn_simclr_prototypes_cifar10.pt" in calls[3]   # the shipped classifier
    assert "30 per class=source,aws,aws@heldout,aws-mean@heldout" in calls[3]
    assert "=resources/resnet26_gn_cifar10.pt" in calls[3] and "--heldout-data" not in calls[3]
    # last, the analysis no deliverable waits for: lrs chosen on a held-out stream as long as the test stream
    assert "--heldout-data ../shared/data/cifar10/train --heldout-images 37500" in calls[-1]
    assert "--out docs/results_ssl_long_heldout.md" in calls[-1]
    # a second run finds every marker: nothing runs again
    log.unlink()
    assert _run(root, stub, log).returncode == 0 and not log.exists()


def test_a_new_checkout_goes_on_where_the_committed_markers_say(tmp_path):
    """A session may start on a new checkout: runs/ is gone, the markers and resources/ are what was committed.
    Nothing finished runs again, and resources/ is never written over when a marker was lost."""
    root, stub = _tree(tmp_path)
    log = tmp_path / "calls.log"
    assert _run(root, stub, log, fail="supervised_10pc").returncode != 0     # stops at the failing stage
    calls = log.read_text().splitlines()
    marks = root / "benchmarks" / "queue_done"
    assert len(calls) == 7 and not (marks / "supervised10.done").exists()
    ssl = (root / "resources" / "resnet26_gn_simclr_ssl_cifar10.pt")
    ssl.write_text("shipped")
    shutil.rmtree(root / "runs")                          # a new checkout: no runs/
    log.unlink()
    assert _run(root, stub, log).returncode == 0
    calls = log.read_text().splitlines()
    assert [_kind(c) for c in calls][:3] == ["sup10", "simclr10", "ssl_table"]
    # a lost marker (work not committed): what resources/ holds is kept, the pages are computed again
    for name in ("simclr", "joint", "results"):
        (marks / f"{name}.done").unlink()
    log.unlink()
    assert _run(root, stub, log).returncode == 0
    calls = log.read_text().splitlines()
    assert [_kind(c) for c in calls] == ["results"]
    assert ssl.read_text() == "shipped"


def test_a_failing_shard_stops_the_stage_after_both_ended(tmp_path):
    root, stub = _tree(tmp_path)
    log = tmp_path / "calls.log"
    assert _run(root, stub, log, fail="--shard 0/2").returncode != 0
    table = [c for c in log.read_text().splitlines() if "ssl_table" in c]
    assert sorted(c.split("--shard ")[-1] for c in table) == ["0/2", "1/2"]    # no page drawn from half the cells
    assert not (root / "benchmarks" / "queue_done" / "ssl_table.done").exists()
