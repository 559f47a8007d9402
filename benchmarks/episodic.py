"""Episodic TTT: the paper's one-image-at-a-time loop against the vectorised path, same images and seed.

    .venv/bin/python benchmarks/episodic.py [--images 16] [--chunk 16] [--method ttt] [--device auto]
                                            [--threads N] [--weights runs/shipped/resnet26_gn_cifar10.state.pt]

The sequential loop follows yueatsprograms/ttt_cifar_release (test_calls/test_adapt.py): for every image reload
the weights, make a fresh SGD optimizer, take 10 steps on 32 rotated crop+flip views, predict on the image. Its
views come from the method's own `draw` with the per-image generator of `tttgui eval`, so both paths see the
same draws and must give the same probabilities. Model: the shipped ResNet-26-GN with rotation head, random
init unless --weights names a state file (only read; the speed does not depend on the weights). Prints images/s
of both, their ratio, the agreement, and peak memory (process RSS; CUDA max allocated on a GPU).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tttgui.augment import to_float  # noqa: E402
from tttgui.device import resolve_device  # noqa: E402
from tttgui.methods import MethodConfig, get_method  # noqa: E402
from tttgui.methods.adapter import make_optimizer  # noqa: E402
from tttgui.models import ModelSpec, build_model  # noqa: E402
from tttgui.vectorized import VectorConfig, VectorizedEpisodic, seeds_for  # noqa: E402


def test_images(n: int) -> np.ndarray:
    folder = ROOT.parent / "shared" / "data" / "cifar10" / "test"
    if folder.is_dir():
        from tttgui.data import open_dataset
        ds = open_dataset(folder)
        return ds.arrays(np.sort(np.random.default_rng(0).permutation(len(ds))[:n]))[0]
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def paper_loop(model, cfg: MethodConfig, x: torch.Tensor, seeds) -> np.ndarray:
    """Reload weights, fresh optimizer, `steps` updates on the views of one image, predict; image by image."""
    cls = get_method(cfg.method)
    recipe = cls.resolve(cfg)
    method = cls(model, {}, recipe, x.device)
    params = [p for _, p in method.parameters()]
    ckpt = {k: v.clone() for k, v in model.state_dict().items()}
    probs = []
    for i, seed in enumerate(seeds):
        model.load_state_dict(ckpt)
        opt = make_optimizer(params, recipe)
        gen = torch.Generator().manual_seed(seed)
        image = x[i:i + 1]
        for _ in range(recipe.steps):
            batch = method.draw(image, gen)
            opt.zero_grad(set_to_none=True)
            method.loss(model, batch).backward()
            opt.step()
        with torch.no_grad():
            probs.append(model(image).softmax(-1)[0].cpu().numpy())
    model.load_state_dict(ckpt)
    return np.stack(probs)


def peak(device) -> str:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # kB on Linux
    text = f"peak RSS {rss:.0f} MB"
    if device.type == "cuda":
        text += f", CUDA max allocated {torch.cuda.max_memory_allocated(device) / 2 ** 20:.0f} MB"
        torch.cuda.reset_peak_memory_stats(device)
    return text


def matmul_rate(device, n: int = 1024, reps: int = 20) -> float:
    """FLOP/s of a dense n×n matmul: the practical ceiling of this device for float32 compute."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def episode_flops(model, cfg: MethodConfig, x: torch.Tensor, seed: int) -> float:
    """FLOPs of one image's adaptation (all steps) plus its prediction, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        paper_loop(model, cfg, x[:1], [seed])
    return counter.get_total_flops()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--method", default="ttt")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", help="a state file with the model's state dict under 'model' (read only)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_model(ModelSpec(heads=("rotation",))).to(device).eval()
    if args.weights:
        state = torch.load(args.weights, map_location=device, weights_only=True)
        model.load_state_dict(state.get("model", state), strict=False)
    x = to_float(torch.from_numpy(test_images(args.images))).to(device)
    cfg = MethodConfig(args.method, protocol="episodic", seed=args.seed)
    seeds = seeds_for(args.seed, range(len(x)))
    vec = VectorizedEpisodic(model, {}, cfg, device, VectorConfig(chunk=args.chunk))

    # warm-up of both paths (first-call allocations and kernel selection), not timed
    paper_loop(model, MethodConfig(args.method, steps=1, seed=args.seed), x[:1], seeds[:1])
    VectorizedEpisodic(model, {}, MethodConfig(args.method, steps=1, seed=args.seed), device,
                       VectorConfig(chunk=min(args.chunk, len(x)))).run(x[:args.chunk], seeds[:args.chunk])
    sync(device)
    peak(device)

    t0 = time.perf_counter()
    want = paper_loop(model, cfg, x, seeds)
    sync(device)
    t_seq = time.perf_counter() - t0
    mem_seq = peak(device)
    t0 = time.perf_counter()
    got = vec.run(x, seeds)[0]
    sync(device)
    t_vec = time.perf_counter() - t0
    mem_vec = peak(device)

    r = vec.recipe
    print(f"{args.method} episodic: {r.steps} steps x {r.views} views, {len(x)} images, device {device}, "
          f"{torch.get_num_threads()} threads, chunk {vec.chunk_size(x[:1])} "
          f"(estimated {vec.bytes_per_image(x[:1]) / 2 ** 20:.0f} MB per image of a chunk)")
    print(f"sequential (paper loop): {len(x) / t_seq:.3f} images/s  ({mem_seq})")
    print(f"vectorised             : {len(x) / t_vec:.3f} images/s  ({mem_vec}; RSS is the process peak so far)")
    print(f"ratio {t_seq / t_vec:.2f}x; max |dp| {np.abs(got - want).max():.2e}; "
          f"same argmax {100 * (got.argmax(1) == want.argmax(1)).mean():.1f}%")
    # Both paths do the same arithmetic, so neither can beat the device's dense-matmul rate.
    flops, rate = episode_flops(model, cfg, x, seeds[0]), matmul_rate(device)
    for name, t in (("sequential", t_seq), ("vectorised", t_vec)):
        achieved = flops * len(x) / t
        print(f"{name}: {achieved / 1e9:.1f} GFLOP/s = {100 * achieved / rate:.0f}% of a 1024x1024 matmul "
              f"({rate / 1e9:.1f} GFLOP/s); ceiling for identical arithmetic {rate / achieved:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
