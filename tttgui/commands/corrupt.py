"""`tttgui corrupt`: write the CIFAR-10-C release format (<corruption>.npy, 5 severities stacked, labels.npy)."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from tttgui.atomic import atomic_path, write_text
from tttgui.errors import UserError


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="clean images (e.g. ../shared/data/cifar10/test)")
    p.add_argument("--out", required=True, help="folder to write <corruption>.npy, labels.npy, corrupt.json")
    p.add_argument("--corruptions", default="all",
                   help="comma list of corruption names, 'all' (19, default) or 'benchmark' (the 15)")
    p.add_argument("--severities", default="1,2,3,4,5", help="comma list from 1..5 (default all five)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frost-dir", help="folder with the original frost1.png..frost5.jpg "
                   "(default: the project's generated texture)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--limit", type=int, help="only the first N images (quick runs)")
    p.add_argument("--no-progress", action="store_true")


def parse_corruptions(text: str) -> tuple[str, ...]:
    from tttgui.corruptions import BENCHMARK_CORRUPTIONS, CORRUPTIONS

    text = (text or "").strip()
    if text == "all":
        return CORRUPTIONS
    if text == "benchmark":
        return BENCHMARK_CORRUPTIONS
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in CORRUPTIONS]
    if bad or not names:
        raise UserError(f"--corruptions: unknown name(s) {', '.join(bad) or repr(text)}; expected 'all', "
                        f"'benchmark' or a comma list of {', '.join(CORRUPTIONS)}")
    return tuple(dict.fromkeys(names))


def parse_severities(text: str) -> tuple[int, ...]:
    try:
        sev = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        sev = ()
    if not sev or any(not 1 <= s <= 5 for s in sev):
        raise UserError(f"--severities {text!r} is not valid; expected a comma list of integers from 1 to 5")
    return tuple(dict.fromkeys(sev))


def save_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def run(args) -> int:
    import torch

    import tttgui
    from tttgui.corruptions import corrupt, describe
    from tttgui.corruptions.frost import frost_source, textures
    from tttgui.data import open_dataset
    from tttgui.device import resolve_device
    from tttgui.progress import Progress

    names = parse_corruptions(args.corruptions)
    severities = parse_severities(args.severities)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit} is not valid; expected a positive number of images")
    if args.frost_dir and "frost" in names:
        textures(str(args.frost_dir), True)  # fail early (one line) on a bad folder
    device = resolve_device(args.device)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; expected a folder (created if missing)")
    out.mkdir(parents=True, exist_ok=True)

    ds = open_dataset(args.data)
    n = len(ds) if args.limit is None else min(args.limit, len(ds))
    images, labels = ds.arrays(range(n))
    if images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"data {args.data} gave images of shape {images.shape}; expected N×H×W×3 RGB")
    # the release stores labels as uint8 tiled once per severity
    label_dtype = np.uint8 if labels.max(initial=0) < 256 else np.int64
    save_atomic(out / "labels.npy", np.tile(labels.astype(label_dtype), len(severities)))

    with Progress(len(names) * len(severities), "corrupt", enabled=not args.no_progress) as bar:
        for name in names:
            stack = np.empty((len(severities) * n,) + images.shape[1:], np.uint8)
            for j, s in enumerate(severities):
                stack[j * n:(j + 1) * n] = corrupt(images, name, s, seed=args.seed, frost_dir=args.frost_dir,
                                                   device=device)
                bar.update(1, postfix=describe(name, s, args.frost_dir))
            save_atomic(out / f"{name}.npy", stack)

    meta = {
        "data": str(args.data), "images": n, "image_shape": list(images.shape[1:]),
        "corruptions": list(names), "severities": list(severities),
        "rows": f"rows (k)*N..(k+1)*N hold severity severities[k], N = {n}",
        "seed": args.seed, "device": str(device),
        "frost": frost_source(args.frost_dir) if "frost" in names else None,
        "versions": {"tttgui": getattr(tttgui, "__version__", "unknown"), "numpy": np.__version__,
                     "torch": torch.__version__, "pillow": __import__("PIL").__version__,
                     "python": platform.python_version()},
    }
    write_text(out / "corrupt.json", json.dumps(meta, indent=2) + "\n")
    print(f"wrote {len(names)} corruption file(s) × {len(severities)} severities × {n} images to {out}")
    return 0
