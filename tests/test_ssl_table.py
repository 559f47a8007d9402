"""benchmarks/ssl_table.py: the with-vs-without-self-supervision page, costs included, cells read back."""
import numpy as np
import torch
from PIL import Image

from tests.conftest import load_benchmark
from tttgui.models import ModelSpec, build_model, save_checkpoint
from tttgui.stats import source_statistics

CLASSES = ["cat", "dog"]


def load_script():
    return load_benchmark("ssl_table")


def checkpoint(path, heads, meta):
    torch.manual_seed(0)
    model = build_model(ModelSpec(num_classes=2, heads=heads, arch_args={"depth": 8, "width": 1, "norm": "gn"}))
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    save_checkpoint(path, model.eval(), CLASSES, source_statistics(model, x, "cpu"), meta)


def test_the_page_states_training_and_evaluation_costs_and_reads_cells_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
    checkpoint(tmp_path / "ssl.pt", ("rotation", "contrastive"),
               {"train_seconds": 7200.0, "linear_probe": {"error": 41.5}})
    checkpoint(tmp_path / "ft.pt", ("rotation", "contrastive"),
               {"train_seconds": 1800.0, "labeled_images": 4, "config": {"init": "ssl.pt"}})
    checkpoint(tmp_path / "plain.pt", (), {"train_seconds": 3600.0, "labeled_images": 40,
                                            "history": [{"phase": 1, "seconds": 900.0}, {"phase": 2, "seconds": 2700.0}]})
    script = load_script()
    argv = ["--data", "data", "--images", "4", "--corruptions", "gaussian_noise", "--cells", "cells",
            "--out", "ssl.md", "--model", "SimCLR + joint=ft.pt", "--model", "no head=plain.pt"]
    assert script.main(argv) == 0
    page = (tmp_path / "ssl.md").read_text()
    ft = next(line for line in page.splitlines() if line.startswith("| SimCLR + joint | 4 |"))
    assert "| 2.50 (2.00 self-supervised) | 41.5 |" in ft           # its own hours + its start's; the start's probe
    plain = next(line for line in page.splitlines() if line.startswith("| no head | 40 | 1.00 (0.25 self-supervised) | — |"))
    assert "n/a (no rotation head)" in plain
    assert "| TTT − none (pp; < 0: TTT helps) |" in page       # the sign is said: a "gain" of -2 read as a loss
    assert "| SimCLR + joint | gaussian_noise |" in page and " s) |" in page   # each cell's cost
    cells = sorted(p.name for p in (tmp_path / "cells").rglob("*.json"))
    assert cells.count("gaussian_noise-ttt-online.json") == 1 and len(cells) == 5
    # a second run reads every cell back: same page but for nothing recomputed
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").rglob("*.json")}
    assert script.main(argv) == 0
    assert (tmp_path / "ssl.md").read_text() == page
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items())


def test_frost_uses_the_folder_given_and_says_which(tmp_path, monkeypatch):
    """CIFAR-10-C's frost blends its own five textures: the table passes --frost-dir to the corruption (a folder
    without them is one clear line) and the page names the textures it used."""
    import pytest

    from tttgui.errors import UserError

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (tmp_path / "data" / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / c / "0.png")
    checkpoint(tmp_path / "plain.pt", (), {"train_seconds": 60.0, "labeled_images": 2})
    script = load_script()
    argv = ["--data", "data", "--images", "2", "--corruptions", "frost", "--cells", "cells", "--out", "ssl.md",
            "--model", "m=plain.pt"]
    with pytest.raises(UserError, match="frost folder /nonexistent not found"):
        script.main(argv + ["--frost-dir", "/nonexistent"])
    monkeypatch.setattr(script, "FROST", tmp_path / "none")
    assert script.main(argv + ["--frost-dir", ""]) == 0
    assert "frost: generated texture" in (tmp_path / "ssl.md").read_text()


def test_shards_split_the_cells_and_the_page_run_computes_none(tmp_path, monkeypatch, capsys):
    """Two processes of one thread (--shard 0/2, 1/2) compute disjoint halves of the cells and write no page; the
    run without --shard then only reads them back. A malformed shard is an argparse error, not a traceback."""
    import pytest

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (tmp_path / "data" / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / c / "0.png")
    checkpoint(tmp_path / "a.pt", ("rotation",), {"train_seconds": 60.0, "labeled_images": 2})
    script = load_script()
    argv = ["--data", "data", "--images", "2", "--corruptions", "gaussian_noise,fog", "--cells", "cells",
            "--out", "ssl.md", "--model", "a=a.pt", "--frost-dir", ""]
    halves = []
    for k in (0, 1):
        before = set((tmp_path / "cells").rglob("*.json")) if (tmp_path / "cells").exists() else set()
        assert script.main(argv + ["--shard", f"{k}/2"]) == 0
        halves.append({p.name for p in set((tmp_path / "cells").rglob("*.json")) - before})
    assert not (tmp_path / "ssl.md").exists()
    assert halves[0] == {"clean.json", "fog-source.json", "gaussian_noise-ttt-online.json"}
    assert halves[1] == {"gaussian_noise-source.json", "fog-ttt-online.json"}
    monkeypatch.setattr(script, "evaluate", lambda *a, **k: pytest.fail("a sharded cell was recomputed"))
    assert script.main(argv) == 0 and "| a | 2 |" in (tmp_path / "ssl.md").read_text()
    with pytest.raises(SystemExit):
        script.main(argv + ["--shard", "2/2"])
    assert "is not K/N" in capsys.readouterr().err
