"""`tttgui eval`: error with and without test-time adaptation, per corruption, severity and method."""
from __future__ import annotations

import shlex
import sys


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", help="tttgui checkpoint (.pt); default: the shipped model")
    p.add_argument("--data", required=True, help="clean test images (a folder with one sub-folder per class)")
    p.add_argument("--corruptions", default="all",
                   help="comma list of corruption names, 'all' (the 15 standard ones) or 'none' (clean images)")
    p.add_argument("--severities", default="5", help="comma list of severities 1-5 (default 5)")
    p.add_argument("--methods", default="source,ttt", help="comma list of methods or 'all' (default source,ttt)")
    p.add_argument("--protocol", default="episodic", choices=["episodic", "online"])
    p.add_argument("--batch-size", type=int, default=1, help="online: images per update (default 1)")
    p.add_argument("--chunk", type=int, default=None,
                   help="episodic: images adapted at once, vectorised (default: 1 on CPU, 32 on GPU; "
                        "1 = the sequential loop)")
    p.add_argument("--steps", type=int, help="updates per image (episodic) or batch (online); default: paper's")
    p.add_argument("--lr", type=float, help="learning rate; default: each method's paper value")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help="default: each method's paper choice")
    p.add_argument("--views", type=int, help="augmented views per update; default: each method's paper value")
    p.add_argument("--params", choices=["default", "all", "trunk", "norm"], help="parameters to adapt")
    p.add_argument("--limit", type=int, help="use N images drawn by --seed (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--frost-dir", help="folder of frost images for the frost corruption")
    p.add_argument("--out", required=True, help="output folder: summary.csv, images.csv, run.json")
    p.add_argument("--no-progress", action="store_true")


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def run(args) -> int:
    import numpy as np
    import torch

    from tttgui.data import open_dataset
    from tttgui.device import resolve_device
    from tttgui.errors import UserError
    from tttgui.evaluation import (EvalConfig, benchmark_corruptions, evaluate, shifts, table,
                                   write_outputs)
    from tttgui.methods import get_method, method_names
    from tttgui.models import default_checkpoint_path, load_checkpoint
    from tttgui.progress import Progress

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    corruptions = _list(args.corruptions.lower())
    if corruptions == ["all"]:
        corruptions = benchmark_corruptions()
    elif corruptions == [] or "all" in corruptions:
        raise UserError(f"--corruptions {args.corruptions!r} is invalid; expected all, none or a comma list")
    try:
        severities = tuple(int(s) for s in _list(args.severities))
    except ValueError:
        raise UserError(f"--severities {args.severities!r} is invalid; expected a comma list of 1-5") from None
    names = _list(args.methods.lower())
    methods = tuple(method_names()) if names == ["all"] else tuple(get_method(m).name for m in names)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit} is invalid; expected 1 or more")
    cfg = EvalConfig(corruptions=tuple(corruptions), severities=severities, methods=methods,
                     protocol=args.protocol, batch_size=args.batch_size, chunk=args.chunk, steps=args.steps, lr=args.lr,
                     optimizer=args.optimizer, views=args.views, params=args.params, seed=args.seed,
                     frost_dir=args.frost_dir)
    device = resolve_device(args.device)
    checkpoint = args.checkpoint or default_checkpoint_path()
    model, payload = load_checkpoint(checkpoint, device)
    stats = payload.get("source_stats") or {}

    ds = open_dataset(args.data)
    n = len(ds)
    if args.limit is not None and args.limit < n:
        indices = np.sort(np.random.default_rng(args.seed).permutation(n)[:args.limit])
    else:
        indices = np.arange(n)
    images, labels = ds.arrays(indices)
    size = model.spec.input_size
    if images.shape[1:3] != (size, size):
        raise UserError(f"images of {args.data} are {images.shape[2]}×{images.shape[1]}; expected {size}×{size} "
                        f"(the model's input size)")

    per_shift = sum(len(images) for _ in methods)
    total = per_shift * len(shifts(cfg))
    with Progress(total, "eval", enabled=not args.no_progress) as bar:
        result = evaluate(model, stats, images, labels, indices, cfg, device,
                          progress=lambda k, text: bar.update(k, text))
    info = {"command": "tttgui eval " + " ".join(shlex.quote(a) for a in sys.argv[2:])
            if sys.argv[1:2] == ["eval"] else "tttgui eval (called from Python)",
            "config": {**cfg.__dict__, "corruptions": list(cfg.corruptions), "severities": list(severities),
                       "methods": list(methods)},
            "checkpoint": str(checkpoint), "checkpoint_meta": {k: payload.get("meta", {}).get(k) for k in
                                                              ("clean_error", "command", "train_seconds")},
            "data": str(args.data), "images": int(len(images)), "limit": args.limit, "seed": args.seed,
            "device": str(device), "threads": torch.get_num_threads(),
            "indices": [int(i) for i in indices]}
    out = write_outputs(args.out, result, info)
    print(table(result))
    print(f"wrote {out / 'summary.csv'}, {out / 'images.csv'}, {out / 'run.json'} ({result.seconds:.1f}s)")
    return 0
