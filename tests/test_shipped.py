"""The shipped model in resources/: present, small, loadable, and as accurate as its model card says."""
import re

import torch

from tttgui.data import open_dataset
from tttgui.models import default_checkpoint_path, load_checkpoint
from tttgui.training import evaluate_clean


def card_error(card) -> float:
    m = re.search(r"Clean error: ([0-9.]+)%", card.read_text())
    assert m, f"{card} states no clean error"
    return float(m.group(1))


def test_shipped_checkpoint_matches_its_model_card(cifar_test_dir):
    path = default_checkpoint_path()
    assert path.is_file(), f"the shipped model {path} is missing"
    assert path.stat().st_size < 10 * 2**20
    model, payload = load_checkpoint(path)
    assert model.spec.arch == "resnet26" and "rotation" in model.spec.heads
    assert len(payload["classes"]) == 10
    stats = payload["source_stats"]
    assert stats["images"] > 0 and stats["norm"] and set(stats["features"]) == {"mean", "cov"}

    stated = card_error(path.with_suffix(".md"))
    ds = open_dataset(cifar_test_dir, limit=1000, seed=0)
    assert list(ds.classes) == payload["classes"]
    images, labels = ds.arrays()
    measured = evaluate_clean(model, images, labels, torch.device("cpu"))
    assert abs(measured["clean_error"] - stated) <= 1.5, (measured, stated)
    assert measured["rotation_accuracy"] > 50
