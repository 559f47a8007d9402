"""GPU smoke check (issue 22): one script for a lent GPU machine, under 8 minutes, one JSON out.

  python benchmarks/gpu_smoke.py --out gpu_smoke.json            # on the GPU machine
  python benchmarks/gpu_smoke.py --device cpu --quick --out x.json   # a dry run of the script itself

Checks, side by side in one process:
- parity: the shipped model's episodic TTT predictions, CPU vs the device (TF32 off), and vectorised vs
  sequential on the device;
- throughput: images/s of episodic TTT sequentially (chunk 1) and vectorised at chunk 32 and 128, with ratios
  (the fast-episodic goal: >= 20x);
- memory: the chunk's estimated bytes vs torch's peak allocation;
- out of memory: a memory cap forces OOM; the run must halve its chunk and give the same predictions;
- training: SimCLR steps per second at batch 256 in float32 and in `--precision bf16`, their ratio, and how far
  the two loss trajectories from the same start drift apart;
- the device-touching tests (tests/test_device.py, tests/test_vectorized.py) run with the GPU visible.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tttgui.data import open_dataset  # noqa: E402
from tttgui.device import no_tf32, resolve_device  # noqa: E402
from tttgui.methods import MethodConfig  # noqa: E402
from tttgui.models import default_checkpoint_path, load_checkpoint  # noqa: E402
from tttgui.vectorized import VectorConfig, VectorizedEpisodic, seeds_for  # noqa: E402


def images(n: int) -> torch.Tensor:
    data = ROOT.parent / "shared" / "data" / "cifar10" / "test"
    if data.is_dir():
        x, _ = open_dataset(str(data)).arrays(range(n))
        return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255).contiguous()
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def episodic(model, stats, x, device, chunk: int, budget=None):
    cfg = MethodConfig("ttt", steps=1, views=32)
    v = VectorizedEpisodic(model, stats, cfg, device, VectorConfig(chunk=chunk, memory_budget=budget))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    probs, _, status = v.run(x, seeds_for(0, range(len(x))))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return probs, status, seconds, peak, v.bytes_per_image(x[:1].to(device)) * min(chunk, len(x))


def sequential(model, stats, x, device):
    """The one-image loop (chunk 1 runs the vectorised code one image at a time; the paper's loop)."""
    return episodic(model, stats, x, device, 1)


def train_steps(device, precision: str, steps: int, batch: int) -> tuple[list[float], float]:
    """(losses, steps/s) of SimCLR steps as `tttgui train --ssl simclr` takes them, from one seeded start."""
    from tttgui.augment import simclr_views
    from tttgui.models import build_model
    from tttgui.training import TrainConfig, autocast, model_spec, nt_xent

    torch.manual_seed(0)
    model = build_model(model_spec(TrainConfig(data="", out="", ssl="simclr"), 10, 32)).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    x = images(batch).to(device)      # views made on the device from CPU-drawn randoms, as the trainer does
    losses, t0 = [], None
    for i in range(steps + 1):        # the first step warms up (cuDNN, autocast caches) and is not timed
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        v = torch.cat([simclr_views(x, gen), simclr_views(x, gen)])
        with autocast(device, precision):
            z = model.project(model.features(v))
        loss = nt_xent(z.float(), 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return losses, steps / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="few images: check the script, not the GPU")
    ap.add_argument("--out", default="gpu_smoke.json")
    args = ap.parse_args()
    device = resolve_device(args.device)
    model, payload = load_checkpoint(default_checkpoint_path(), device)
    stats = payload.get("source_stats") or {}
    cpu_model, _ = load_checkpoint(default_checkpoint_path(), "cpu")
    n = 8 if args.quick else 256
    x = images(n)
    report = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "images": n}
    t_start = time.perf_counter()
    with no_tf32():
        cpu_probs = episodic(cpu_model, stats, x[:8], torch.device("cpu"), 8)[0]
        dev_probs = episodic(model, stats, x[:8], device, 8)[0]
    report["parity_cpu_vs_device_max_abs_prob"] = float(np.abs(cpu_probs - dev_probs).max())
    report["parity_cpu_vs_device_same_predictions"] = bool((cpu_probs.argmax(1) == dev_probs.argmax(1)).all())
    seq = sequential(model, stats, x[: (8 if args.quick else 64)], device)
    report["sequential_images_per_s"] = len(seq[0]) / seq[2]
    for chunk in (32, 128):
        probs, status, seconds, peak, estimate = episodic(model, stats, x, device, chunk)
        report[f"chunk{chunk}_images_per_s"] = n / seconds
        report[f"chunk{chunk}_speedup_vs_sequential"] = (n / seconds) / report["sequential_images_per_s"]
        report[f"chunk{chunk}_estimated_bytes"] = int(estimate)
        report[f"chunk{chunk}_peak_bytes"] = None if peak is None else int(peak)
        if chunk == 32:
            m = len(seq[0])
            report["parity_vectorised_vs_sequential_max_abs_prob"] = float(np.abs(probs[:m] - seq[0]).max())
            reference = probs
    if device.type == "cuda":   # a cap far below one chunk's need: OOM, halving, the same predictions
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(device).total_memory
        cap = min(1.0, 2 * report["chunk32_estimated_bytes"] / 32 * 4 / total)
        torch.cuda.set_per_process_memory_fraction(cap, device)
        try:
            probs = episodic(model, stats, x, device, 128, budget=10 ** 12)[0]
            report["oom_recovered_same_predictions"] = bool(np.abs(probs - reference).max() < 1e-4)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            report["oom_recovered_same_predictions"] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
    steps = 1 if args.quick else 20
    fp32, fp32_rate = train_steps(device, "fp32", steps, 16 if args.quick else 256)
    bf16, bf16_rate = train_steps(device, "bf16", steps, 16 if args.quick else 256)
    report["train_fp32_steps_per_s"], report["train_bf16_steps_per_s"] = fp32_rate, bf16_rate
    report["train_bf16_speedup"] = bf16_rate / fp32_rate
    report["train_bf16_max_loss_drift"] = max(abs(a - b) for a, b in zip(fp32, bf16))
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/test_device.py", "tests/test_vectorized.py"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    report["device_tests"] = (tests.stdout.strip().splitlines() or ["no output"])[-1]
    report["seconds"] = time.perf_counter() - t_start
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
