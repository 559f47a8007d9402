"""The shipped model in resources/: present, small, loadable, and as accurate as its model card says."""
import re

import torch

from tttgui.augment import to_float
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


def test_shipped_source_statistics_describe_the_whole_training_distribution(cifar_test_dir):
    # Statistics of one or two classes (the first images of a sorted folder) sit far from clean test features:
    # the first shipped model's were 0.72 feature standard deviations away, and ActMAD diverged on them.
    model, payload = load_checkpoint(default_checkpoint_path())
    info = payload["meta"]["source_stats"]
    assert info["images"] >= 10000 and info["augment"] == "crop4+flip"
    images, _ = open_dataset(cifar_test_dir, limit=1000, seed=0).arrays()
    with torch.no_grad():
        feats = model.features(to_float(torch.from_numpy(images)))
    src = payload["source_stats"]["features"]
    distance = (feats.mean(0) - src["mean"]).norm() / src["cov"].trace().sqrt()
    assert distance < 0.2, float(distance)
