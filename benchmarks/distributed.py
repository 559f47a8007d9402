"""Scale-out of `tttgui eval`: the same episodic run in 1 process and under torchrun on N ranks (one torch thread
each), same images and seed.

    .venv/bin/python benchmarks/distributed.py [--images 64] [--ranks 2] [--method ttt] [--steps N]
        [--corruption gaussian_noise] [--severity 5] [--checkpoint PATH] [--data DIR] [--keep DIR]

Both runs are the real command (`python -m tttgui eval` and `torchrun --nproc_per_node N -m tttgui eval`, on
127.0.0.1). Prints images/s of each from the engine's time (run.json `seconds`: corruption, source predictions,
adaptation and, for N ranks, the merge on rank 0) and from the command's wall time (with start-up and model
loading), the ratio (target on 2 cores: 1.8x or more), and whether the predictions are equal.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "test"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--method", default="ttt")
    p.add_argument("--steps", type=int, help="updates per image (default: the method's paper value)")
    p.add_argument("--corruption", default="gaussian_noise")
    p.add_argument("--severity", type=int, default=5)
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--data", default=str(DATA), help="clean test images (default ../shared/data/cifar10/test)")
    p.add_argument("--keep", help="write both runs' outputs here (default: a temporary folder)")
    return p.parse_args(argv)


def eval_args(args, out: Path) -> list[str]:
    extra = (["--checkpoint", args.checkpoint] if args.checkpoint else []) + \
        (["--steps", str(args.steps)] if args.steps is not None else [])
    return ["eval", "--data", args.data, "--corruptions", args.corruption, "--severities", str(args.severity),
            "--methods", args.method, "--protocol", "episodic", "--limit", str(args.images), "--threads", "1",
            "--device", "cpu", "--no-progress", "--out", str(out), *extra]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd: list[str]) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[:6])} ... failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def predictions(out: Path) -> list[tuple]:
    with open(out / "images.csv", newline="") as f:
        return [(r["index"], r["prediction_before"], r["prediction_after"], r["status"]) for r in csv.DictReader(f)]


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tttgui-dist-"))
    one, many = base / "1-rank", base / f"{args.ranks}-ranks"
    wall = {1: timed([sys.executable, "-m", "tttgui", *eval_args(args, one)]),
            args.ranks: timed([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.ranks),
                               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "tttgui",
                               *eval_args(args, many)])}
    engine = {k: json.loads((out / "run.json").read_text())["seconds"] for k, out in ((1, one), (args.ranks, many))}
    n = len(predictions(one))
    print(f"{args.method} episodic, {n} images of {args.corruption}-{args.severity}, one torch thread per rank")
    for k in (1, args.ranks):
        print(f"  {k} rank(s): engine {n / engine[k]:7.2f} images/s ({engine[k]:.1f} s), "
              f"command {n / wall[k]:7.2f} images/s ({wall[k]:.1f} s with start-up)")
    ratio = engine[1] / engine[args.ranks]
    print(f"  throughput ratio {args.ranks} vs 1 rank: {ratio:.2f}x engine (target >= {0.9 * args.ranks:.1f}x), "
          f"{wall[1] / wall[args.ranks]:.2f}x command")
    same = predictions(one) == predictions(many)
    print(f"  predictions equal: {'yes' if same else 'NO'}")
    print(f"  outputs: {base}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
