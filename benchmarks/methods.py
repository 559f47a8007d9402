"""Throughput of every adaptation method on this machine: images/s and update steps/s.

    .venv/bin/python benchmarks/methods.py [--checkpoint PATH] [--images 8] [--device auto] [--threads N]

Each method runs its paper defaults (episodic: reset, its steps on its views, predict) through the same Adapter
as `tttgui eval`. Without the shipped checkpoint a randomly initialised ResNet-26-GN with the same heads is
used: speed does not depend on the weights. Images are CIFAR-10 test images when ../shared/data is present.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tttgui.augment import to_float  # noqa: E402
from tttgui.device import resolve_device  # noqa: E402
from tttgui.methods import Adapter, MethodConfig, get_method, image_seed, method_names  # noqa: E402
from tttgui.models import ModelSpec, build_model, default_checkpoint_path, load_checkpoint  # noqa: E402
from tttgui.stats import source_statistics  # noqa: E402


def load_model(path, device):
    path = Path(path) if path else default_checkpoint_path()
    if path.is_file():
        model, payload = load_checkpoint(path, device)
        return model, payload.get("source_stats") or {}, str(path)
    torch.manual_seed(0)
    model = build_model(ModelSpec(heads=("rotation", "contrastive"))).to(device).eval()
    images = torch.randint(0, 256, (256, 32, 32, 3), dtype=torch.uint8)
    return model, source_statistics(model, images, device), "random-init ResNet-26-GN (rotation + contrastive)"


def test_images(n: int) -> np.ndarray:
    folder = ROOT.parent / "shared" / "data" / "cifar10" / "test"
    if folder.is_dir():
        from tttgui.data import open_dataset
        ds = open_dataset(folder)
        idx = np.sort(np.random.default_rng(0).permutation(len(ds))[:n])
        return ds.arrays(idx)[0]
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def bench(model, stats, method, images, device, protocol) -> dict:
    ad = Adapter(model, stats, MethodConfig(method, protocol=protocol), device)
    x_all = to_float(torch.from_numpy(images)).to(device)
    # one image per update, but a method that learns from in-batch pairs (aws) gets its batch
    size = min(ad.method.batch_size or 1, len(x_all)) if ad.method.min_batch > 1 else 1
    # warm-up (allocator, first-call overheads), not timed
    ad.update(x_all[:size]) if ad.method.adapts else None
    ad.reset()
    steps = 0
    t0 = time.perf_counter()
    for i in range(0, len(x_all), size):
        x = x_all[i:i + size]
        if protocol == "episodic":
            ad.reset()
            ad.seed(image_seed(0, i))
        if ad.method.adapts:
            for _ in range(ad.recipe.steps):
                ad.update(x)
                steps += 1
        ad.predict(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    ad.reset()
    return {"method": method, "protocol": protocol, "steps_per_image": ad.recipe.steps, "views": ad.recipe.views,
            "images_per_s": len(x_all) / seconds, "steps_per_s": steps / seconds if steps else float("nan")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--methods", default=",".join(method_names()))
    p.add_argument("--protocols", default="episodic,online")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model, stats, origin = load_model(args.checkpoint, device)
    images = test_images(args.images)
    print(f"# {origin}; {len(images)} images; device {device}; {torch.get_num_threads()} threads; "
          f"torch {torch.__version__}; {platform.processor() or platform.machine()}")
    print(f"{'method':<8}{'protocol':>10}{'steps':>7}{'views':>7}{'images/s':>11}{'steps/s':>10}")
    for protocol in args.protocols.split(","):
        for method in args.methods.split(","):
            if method == "ttt++" and "contrastive" not in model.spec.heads and not stats.get("features"):
                continue
            if protocol not in get_method(method).protocols:     # aws has no episodic recipe
                continue
            r = bench(model, stats, method, images, device, protocol)
            print(f"{r['method']:<8}{r['protocol']:>10}{r['steps_per_image']:>7}{r['views']:>7}"
                  f"{r['images_per_s']:>11.2f}{r['steps_per_s']:>10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
