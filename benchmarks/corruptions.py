"""Time all 19 corruptions × 5 severities on the CIFAR-10 test set: the batched torch implementation
(tttgui.corruptions.corrupt) against a per-image loop written the way make_cifar_c.py works
(tttgui.corruptions.reference), measured in the same run. The reference runs on a subset and is
extrapolated to the full set (printed as such).

    .venv/bin/python benchmarks/corruptions.py [--data ../shared/data/cifar10/test] [--ref-images 100]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from tttgui.corruptions import CORRUPTIONS, corrupt
from tttgui.corruptions.reference import corrupt_one
from tttgui.data import open_dataset

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "test"))
    p.add_argument("--limit", type=int, help="images for the fast path (default: all)")
    p.add_argument("--ref-images", type=int, default=100, help="images per severity for the reference loop")
    p.add_argument("--corruptions", default=",".join(CORRUPTIONS))
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--frost-dir", default=str(ROOT.parent / "shared" / "data" / "frost"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t = time.perf_counter()
    ds = open_dataset(args.data)
    n = len(ds) if args.limit is None else min(args.limit, len(ds))
    images, _ = ds.arrays(range(n))
    print(f"loaded {n} images from {args.data} in {time.perf_counter() - t:.1f}s (not counted below); "
          f"torch threads {torch.get_num_threads()}")
    k = min(args.ref_images, n)
    subset = images[np.linspace(0, n - 1, k).astype(int)]
    print(f"reference: per-image loop on {k} images per severity, EXTRAPOLATED ×{n / k:.0f} to {n} images")
    print(f"{'corruption':20s} {'fast [s]':>9s} {'ref extrap. [s]':>16s} {'ratio':>7s}")
    total_fast = total_ref = 0.0
    corrupt(images[:8], "frost", 1, frost_dir=args.frost_dir)  # texture loading is a one-off, outside timing
    for name in args.corruptions.split(","):
        t = time.perf_counter()
        for s in range(1, 6):
            corrupt(images, name, s, seed=0, frost_dir=args.frost_dir)
        fast = time.perf_counter() - t
        rs = np.random.RandomState(0)
        t = time.perf_counter()
        for s in range(1, 6):
            for im in subset:
                corrupt_one(im, name, s, rs)
        ref = (time.perf_counter() - t) * n / k
        total_fast += fast
        total_ref += ref
        print(f"{name:20s} {fast:9.2f} {ref:16.1f} {ref / fast:6.1f}x", flush=True)
    print(f"{'TOTAL':20s} {total_fast:9.2f} {total_ref:16.1f} {total_ref / total_fast:6.1f}x")
    print(f"fast: {len(args.corruptions.split(','))} corruptions × 5 severities × {n} images in {total_fast:.1f}s "
          f"(target < 120 s for 19 × 5 × 10000 on 2 CPU cores)")


if __name__ == "__main__":
    main()
