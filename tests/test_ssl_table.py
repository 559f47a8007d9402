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


def images(root, per_class: int) -> None:
    """root/data/<class>/<i>.png: random 32x32 images, seeded."""
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (root / "data" / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "data" / c / f"{i}.png")


def test_the_page_states_training_and_evaluation_costs_and_reads_cells_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images(tmp_path, 2)
    checkpoint(tmp_path / "ssl.pt", ("rotation", "contrastive"),
               {"train_seconds": 7200.0, "linear_probe": {"error": 41.5, "train_images": 50},
                "history": [{"phase": 1, "seconds": 3600.0}] * 2})
    checkpoint(tmp_path / "ft.pt", ("rotation", "contrastive"),
               {"train_seconds": 1800.0, "labeled_images": 4, "config": {"init": "ssl.pt"},
                "history": [{"phase": 2, "seconds": 600.0}] * 2 + [{"phase": 3, "seconds": 600.0}]})
    checkpoint(tmp_path / "plain.pt", (), {"train_seconds": 3600.0, "labeled_images": 40, "clean_error": 12.34,
                                            "test_images": 10000,
                                            "history": [{"phase": 1, "seconds": 900.0}, {"phase": 2, "seconds": 2700.0}]})
    script = load_script()
    argv = ["--data", "data", "--images", "4", "--corruptions", "gaussian_noise", "--cells", "cells",
            "--out", "ssl.md", "--model", "SimCLR + joint=ft.pt", "--model", "no head=plain.pt"]
    assert script.main(argv) == 0
    page = (tmp_path / "ssl.md").read_text()
    ft = next(line for line in page.splitlines() if line.startswith("| SimCLR + joint | 4 |"))
    # its own hours + its start's; the start's probe, with the labels it was fitted on (not this row's 4)
    assert "| 2.50 (2.00 self-supervised) | 2 + 2 + 1 | 41.5 (50) |" in ft
    plain = next(line for line in page.splitlines() if line.startswith("| no head | 40 | 1.00 (0.25 self-supervised) | 1 + 1 + 0 | — |"))
    assert "n/a (no rotation head)" in plain
    assert plain.split("|")[7].strip() == "12.34 (10000)"      # the card's clean error, on its whole test folder
    assert ft.split("|")[7].strip() == "—"                      # none recorded
    assert "| TTT − none (pp, 95 %; < 0: TTT helps) |" in page       # the sign is said: a "gain" of -2 read as a loss
    assert "| SimCLR + joint | gaussian_noise |" in page and " s) |" in page   # each cell's cost
    # the cost's thread count is the cells' own (the queue computes them in one-thread shards, then draws the page
    # with two threads)
    assert "the cells' were measured on 1 CPU thread." in page
    old = {"config": {"epochs": 72}}        # the first shipped model predates --finetune: joint was the only kind
    assert script.recipe_text([({"finetune": "joint"}, ("rotation",)), (old, ("rotation",))]).startswith(
        "Every model is fine-tuned")
    assert script.recipe_text([({"finetune": "joint"}, ("rotation",)), ({"finetune": "full"}, ())]).startswith(
        "The models' fine-tuning is on their cards")
    assert script.threads_text([{"threads": 2}, {"threads": 1}, {}]) == \
        "1 CPU thread or 2 CPU threads or an unrecorded number of threads"
    cells = sorted(p.name for p in (tmp_path / "cells").rglob("*.json"))
    assert cells.count("gaussian_noise-ttt-online.json") == 1 and len(cells) == 5
    # a second run reads every cell back: same page but for nothing recomputed
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").rglob("*.json")}
    assert script.main(argv) == 0
    assert (tmp_path / "ssl.md").read_text() == page
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items())
    # cells of other engine code (a corruption or method fix since) are computed again, not paired with new ones
    monkeypatch.setattr(script, "engine_digest", lambda: "other")
    assert script.main(argv) == 0
    assert all(p.stat().st_mtime_ns != t for p, t in stamp.items())


def test_frost_uses_the_folder_given_and_says_which(tmp_path, monkeypatch):
    """CIFAR-10-C's frost blends its own five textures: the table passes --frost-dir to the corruption (a folder
    without them is one clear line) and the page names the textures it used."""
    import pytest

    from tttgui.errors import UserError

    monkeypatch.chdir(tmp_path)
    images(tmp_path, 1)
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
    images(tmp_path, 1)
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


def test_models_with_the_same_labels_are_compared_image_by_image(tmp_path, monkeypatch):
    """Each cell keeps which images it got wrong; the TTT column and the same-labels comparison carry 95 %
    intervals paired over the same images, and their centres are the differences of the errors shown."""
    import json
    import re

    monkeypatch.chdir(tmp_path)
    images(tmp_path, 3)
    checkpoint(tmp_path / "sup.pt", ("rotation",), {"train_seconds": 60.0, "labeled_images": 6})
    torch.manual_seed(1)
    model = build_model(ModelSpec(num_classes=2, heads=("rotation",), arch_args={"depth": 8, "width": 1, "norm": "gn"}))
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    save_checkpoint(tmp_path / "ssl.pt", model.eval(), CLASSES, source_statistics(model, x, "cpu"),
                    {"train_seconds": 60.0, "labeled_images": 6})
    script = load_script()
    argv = ["--data", "data", "--images", "6", "--corruptions", "gaussian_noise,fog", "--cells", "cells",
            "--out", "ssl.md", "--model", "sup=sup.pt", "--model", "ssl=ssl.pt", "--frost-dir", ""]
    assert script.main(argv) == 0
    page = (tmp_path / "ssl.md").read_text()
    cells = {p.parent.name + "/" + p.name: json.loads(p.read_text()) for p in (tmp_path / "cells").rglob("*.json")}
    assert len(cells) == 10 and all(len(c["wrong_after"]) == 6 and c["n"] == 6 for c in cells.values())
    for c in cells.values():       # the record and the error agree
        assert abs(100 * c["wrong_before"].count("1") / 6 - c["before"]) < 1e-9
    row = next(line for line in page.splitlines() if line.startswith("| ssl − sup | 6 |"))
    key = next((tmp_path / "cells").iterdir()).name.split("-", 1)[1]         # images_key: "6-<digest>"
    folder = lambda path: script.open_model(f"m={path}", script.argparse.Namespace(cells="cells"),  # noqa: E731
                                            key)[3].relative_to("cells").as_posix()
    sup_clean, ssl_clean = (cells[f"{folder(m)}/clean.json"]["before"] for m in ("sup.pt", "ssl.pt"))
    centre = float(re.findall(r"\| ([+-]\d+\.\d) \[", row)[0])
    assert abs(centre - (ssl_clean - sup_clean)) < 0.051
    assert "TTT − none (pp, 95 %; < 0: TTT helps)" in page
    sup = next(line for line in page.splitlines() if line.startswith("| sup | 6 |"))
    assert re.search(r"\| [+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\] \|", sup)   # TTT − none with its interval
    # a cell written by the version without the per-image record is computed again, not trusted for intervals;
    # so is one whose recipe is not today's (a method default changed since)
    old = next((tmp_path / "cells").rglob("fog-source.json"))
    old.write_text(json.dumps({"before": 50.0, "after": 50.0, "n": 6, "seconds": 1.0}) + "\n")
    ttt = next((tmp_path / "cells").rglob("fog-ttt-online.json"))
    stale = {**json.loads(ttt.read_text()), "after": 99.0}
    stale["recipe"] = {**stale["recipe"], "lr": 123.0}
    ttt.write_text(json.dumps(stale) + "\n")
    assert script.main(argv) == 0
    assert "wrong_after" in json.loads(old.read_text()) and json.loads(ttt.read_text())["after"] != 99.0
    assert json.loads(ttt.read_text())["recipe"]["lr"] != 123.0


def test_cells_of_another_image_set_are_not_reused(tmp_path, monkeypatch):
    """Two data folders of the same size with other labels: the second run computes its own cells (the cell folder
    was keyed on the checkpoint and the image count alone, so the second page showed the first's errors)."""
    import shutil

    monkeypatch.chdir(tmp_path)
    images(tmp_path, 2)
    shutil.copytree(tmp_path / "data" / "cat", tmp_path / "other" / "dog")   # the cats, labelled dog
    shutil.copytree(tmp_path / "data" / "dog", tmp_path / "other" / "cat")
    checkpoint(tmp_path / "m.pt", (), {"train_seconds": 60.0, "labeled_images": 4})
    script = load_script()
    run = lambda data: script.main(["--data", data, "--images", "4", "--corruptions", "fog", "--cells", "cells",  # noqa: E731
                                    "--out", f"{data}.md", "--model", "m=m.pt", "--frost-dir", ""])
    assert run("data") == 0 and run("other") == 0
    assert len(list((tmp_path / "cells").iterdir())) == 2
    clean = [next(ln for ln in (tmp_path / f"{d}.md").read_text().splitlines() if ln.startswith("| m | 4 |"))
             .split("|")[6].strip() for d in ("data", "other")]
    assert float(clean[0]) + float(clean[1]) == 100.0          # every image's label swapped: errors complement


def test_a_checkpoint_without_a_label_count_is_counted_from_its_folder(tmp_path):
    script = load_script()
    images(tmp_path, 3)
    assert script.labeled_images({"labeled_images": 7}) == 7
    assert script.labeled_images({"config": {"data": str(tmp_path / "data"), "label_fraction": 1.0}}) == 6
    assert script.labeled_images({"config": {"data": str(tmp_path / "data"), "label_fraction": 0.5}}) is None
    assert script.labeled_images({"config": {"data": str(tmp_path / "gone"), "label_fraction": 1.0}}) is None


def test_paired_differences_are_pinned():
    """ssl − sup over the same 4 images: clean wrong 1100 vs 1000 -> per-image d = (0, -1, 0, 0): mean -25 pp,
    sd 0.5, half-width 1.96 * 0.5 / 2 = 49 pp. The mean columns pool two corruptions of the same 4 images: each image
    is one cluster, so the same outcomes twice give the same interval (as 8 independent pairs it was 32.1 pp wide);
    TTT d = (-1, -1, 0, 0) twice: cluster sums (-1, -1, 1, 1), variance 4/3 * 4 / 64, half-width 56.6 pp. Another
    label count is not compared."""
    script = load_script()
    a = {"wrong_before": "1100", "wrong_after": "1100"}
    b = {"wrong_before": "1000", "wrong_after": "0000"}
    rows = script.comparisons([("sup", 4, a, [a, a], [a, a]), ("ssl", 4, b, [b, b], [b, b]),
                               ("other", 8, b, [b, b], [])])
    row = next(r for r in rows if r.startswith("| ssl − sup"))
    assert row == "| ssl − sup | 4 | -25.0 [-74.0, +24.0] | -25.0 [-74.0, +24.0] | -50.0 [-106.6, +6.6] |"
    assert not any("other" in r for r in rows)
    assert script.paired(np.zeros((1, 3)), np.zeros((1, 2))) == "n/a"


def test_a_folder_of_fewer_classes_is_scored_by_name(tmp_path, monkeypatch):
    """A folder holding only dog/ (the model's class 1): its label 0 is scored as the model's dog, not its cat."""
    import json
    import shutil

    from tttgui.models import load_checkpoint

    monkeypatch.chdir(tmp_path)
    images(tmp_path, 3)
    shutil.rmtree(tmp_path / "data" / "cat")
    checkpoint(tmp_path / "m.pt", (), {"train_seconds": 60.0, "labeled_images": 4})
    script = load_script()
    assert script.main(["--data", "data", "--images", "3", "--corruptions", "fog", "--cells", "cells", "--out",
                        "ssl.md", "--model", "m=m.pt", "--frost-dir", ""]) == 0
    clean = json.loads(next((tmp_path / "cells").rglob("clean.json")).read_text())
    model, _ = load_checkpoint(tmp_path / "m.pt")
    x, _ = script.open_dataset("data").arrays(np.arange(3))
    with torch.no_grad():
        pred = model(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).argmax(1).numpy()
    assert clean["wrong_before"] == "".join("0" if p == 1 else "1" for p in pred)


def test_the_queue_ships_a_further_trained_model_only_when_its_error_is_lower(tmp_path):
    script = load_benchmark("lower_error")
    for name, err, n in (("old", 13.01, 10000), ("better", 11.9, 10000), ("worse", 13.2, 10000), ("other", 5.0, 100)):
        checkpoint(tmp_path / f"{name}.pt", (), {"clean_error": err, "test_images": n})
    old = str(tmp_path / "old.pt")
    assert script.main(str(tmp_path / "better.pt"), old) == 0
    assert script.main(str(tmp_path / "worse.pt"), old) == 1
    assert script.main(str(tmp_path / "other.pt"), old) == 2     # another test set: not comparable
