"""`tttgui eval`: error with and without test-time adaptation, per corruption, severity and method."""
from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path

from tttgui.commands import checks
from tttgui.errors import UserError, shown


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", help="tttgui checkpoint (.pt); default: the shipped model")
    p.add_argument("--data", required=True,
                   help="clean test images (a folder with one sub-folder per class), or a corruption release "
                        "(CIFAR-10-C layout: <corruption>.npy + labels.npy, or one <corruption>.npy)")
    p.add_argument("--corruptions", default="all",
                   help="comma list of corruption names, 'all' (the 15 standard ones; of a release: those it "
                        "holds) or 'none' (clean images)")
    p.add_argument("--severities", default="5", help="comma list of severities 1-5 (default 5)")
    from tttgui.methods.registry import method_names

    p.add_argument("--methods", default="source,ttt",
                   help=f"comma list of methods or 'all' (default source,ttt): {', '.join(method_names())}")
    p.add_argument("--protocol", default="episodic", choices=["episodic", "online", "offline", "continual"],
                   help="episodic (reset per image), online (one stream per corruption), offline (TTT++'s epochs "
                        "over each corruption's test set) or continual (one stream over the corruptions, no reset)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per update (default: continual 16; online and offline each method's own from its "
                   "paper: tent 200, actmad 128, ttt++ 256, aws 16, ttt and memo 1)")
    p.add_argument("--epochs", type=int, help="offline: epochs per cell, the first 2 forward-only (default 500)")
    p.add_argument("--chunk", type=int, default=None,
                   help="episodic: images adapted at once, vectorised (default: 1 on CPU, 32 on GPU; "
                        "1 = the sequential loop)")
    p.add_argument("--steps", type=int, help="updates per image (episodic) or batch (online); default: paper's")
    p.add_argument("--lr", type=float, help="learning rate; default: each method's paper value")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help="default: each method's paper choice")
    p.add_argument("--views", type=int, help="augmented views per update; default: each method's paper value")
    p.add_argument("--params", choices=["default", "all", "trunk", "norm"], help="parameters to adapt")
    p.add_argument("--diagnose", action="store_true",
                   help="episodic: also write per labelled image the TTT paper's diagnostic (gradient cosine at the "
                        "first step, decrease of the true class's loss) to images.csv; runs images one at a time")
    p.add_argument("--limit", type=int, help="use N images drawn by --seed (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--deterministic", action="store_true",
                   help="TF32 off, deterministic cuDNN and algorithms, seeded CUDA generators (GPU runs that must "
                   "repeat exactly; slower); recorded in run.json")
    p.add_argument("--memory-budget", type=float, metavar="MB",
                   help="memory a vectorised chunk may use, in MB (default: half the free memory, cached included)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--frost-dir", help="folder of frost images for the frost corruption")
    p.add_argument("--out", required=True, help="output folder: summary.csv, images.csv, run.json")
    p.add_argument("--resume", action="store_true",
                   help="continue the unfinished run in --out (same options, checked): finished cells are kept")
    p.add_argument("--no-progress", action="store_true")


OUTPUTS = ("summary.csv", "images.csv", "run.json")


def _list(text: str, option: str, expected: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError(f"{option} {text!r} is empty; expected {expected}")
    twice = next((t for k, t in enumerate(items) if t in items[:k]), None)
    if twice is not None:   # a repeated item would repeat its rows in summary.csv
        raise UserError(f"{option} {text!r} names {twice} twice; expected each at most once")
    return items


def check_options(args) -> None:
    """The options that need no model or data, checked before anything is loaded."""
    checks.threads(args.threads)
    checks.positive("--memory-budget", args.memory_budget)
    checks.seed(args.seed)
    checks.at_least("--limit", args.limit, 1)
    check_out(Path(args.out))


def check_out(out: Path) -> None:
    """Refuse an output folder that cannot take the results now, not after the work (which would be lost)."""
    expected = "expected a folder tttgui can write summary.csv, images.csv and run.json into"
    checks.output_folder("--out", out, expected)
    taken = [name for name in OUTPUTS if (out / name).is_dir()]
    if taken:
        raise UserError(f"--out {out} holds a folder named {taken[0]}; {expected}")


def skip_refused(cfg, model, images: int, source_stats: dict) -> tuple[str, ...]:
    """The methods of cfg that can run; those that cannot are named in one line, grouped by the reason."""
    from tttgui.evaluation import refusal

    reasons: dict[str, list[str]] = {}
    for m in cfg.methods:
        if why := refusal(cfg, m, model, images, source_stats):
            reasons.setdefault(why, []).append(m)
    if reasons:
        print(shown("--methods all: skipping " + "; ".join(f"{', '.join(ms)} ({why})" for why, ms in reasons.items())),
              file=sys.stderr)
    skipped = {m for ms in reasons.values() for m in ms}
    return tuple(m for m in cfg.methods if m not in skipped)


def run(args) -> int:
    import numpy as np
    import torch

    from tttgui.data.labels import UNLABELED, model_labels
    from tttgui.device import resolve_device, set_deterministic
    from tttgui.evaluation import (EvalConfig, benchmark_corruptions, check_config, check_labels, collect,
                                   evaluate, recipes, run_record, shifts, write_result)
    from tttgui.inputs import RELEASE, check_severities, open_input, pick_corruptions
    from tttgui.methods import MethodConfig, get_method, method_names
    from tttgui.models import default_checkpoint_path, load_checkpoint
    from tttgui.models.checkpoint import require_classifier
    from tttgui.progress import Progress
    from tttgui.protocols import stream_corruptions
    from tttgui.results import table
    from tttgui.distributed import RankFailed, World, open_store
    from tttgui.store import digest, sha256_file

    check_options(args)
    corruptions = _list(args.corruptions.lower(), "--corruptions", "all, none or a comma list of corruptions")
    if "all" in corruptions and corruptions != ["all"]:
        raise UserError(f"--corruptions {args.corruptions!r} is invalid; expected all, none or a comma list")
    try:
        severities = tuple(int(s) for s in _list(args.severities, "--severities", "a comma list of 1-5"))
    except ValueError:
        raise UserError(f"--severities {args.severities!r} is invalid; expected a comma list of 1-5") from None
    names = _list(args.methods.lower(), "--methods", "all or a comma list of methods")
    methods = tuple(method_names()) if names == ["all"] else tuple(get_method(m).name for m in names)
    if len(set(methods)) < len(methods):   # two spellings of one method
        raise UserError(f"--methods {args.methods!r} names a method twice; expected each at most once")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    world = World.from_env()   # set by torchrun (tttgui.distributed); one process otherwise
    device = world.device(args.device) if world.size > 1 else resolve_device(args.device)
    if args.deterministic:
        set_deterministic(args.seed)
    checkpoint = args.checkpoint or default_checkpoint_path()
    model, payload = load_checkpoint(checkpoint, device)
    require_classifier(payload, checkpoint)
    stats = payload.get("source_stats") or {}

    # data without class names of its own (image files, releases without classes.txt) takes the model's order
    inp = open_input(args.data, class_names=tuple(payload["classes"]), as_images=corruptions == ["none"])
    if inp.kind == RELEASE:
        corruptions = pick_corruptions(inp, corruptions, benchmark_corruptions())
        check_severities(inp, severities)
    elif corruptions == ["all"]:
        corruptions = benchmark_corruptions()
    if args.protocol == "continual" and "none" not in corruptions:   # the stream runs in the paper's order
        corruptions = stream_corruptions(corruptions)
    all_labels = model_labels(inp.labels, inp.classes, payload["classes"], f"data {args.data}")
    n = len(inp)
    if args.limit is not None and args.limit < n:
        indices = np.sort(np.random.default_rng(args.seed).permutation(n)[:args.limit])
    else:
        indices = np.arange(n)
    settings = MethodConfig(steps=args.steps, lr=args.lr, optimizer=args.optimizer, views=args.views,
                            params=args.params, protocol=args.protocol, seed=args.seed)
    cfg = EvalConfig(corruptions=tuple(corruptions), severities=severities, methods=methods, settings=settings,
                     batch_size=args.batch_size, chunk=args.chunk, frost_dir=args.frost_dir, epochs=args.epochs,
                     memory_budget=None if args.memory_budget is None else int(args.memory_budget * 2 ** 20),
                     diagnose=args.diagnose)
    if names == ["all"]:       # every method this run can have; a named one it cannot is refused below
        cfg = replace(cfg, methods=skip_refused(cfg, model, len(indices), stats))
        methods = cfg.methods
    labels = all_labels[indices]
    shifted = inp.shifted(indices)
    images = inp.clean_images(indices)
    if images is None:   # a release: the first shift's images stand for the size check
        images = shifted(cfg.corruptions[0], cfg.severities[0])
    size = model.spec.input_size
    if images.shape[1:3] != (size, size):
        raise UserError(f"images of {args.data} are {images.shape[2]}×{images.shape[1]}; expected {size}×{size} "
                        f"(the model's input size)")

    # before the store opens: a typo leaves no run
    check_config(cfg, model, release=shifted is not None, images=len(images))
    check_labels(labels, model)
    store = open_store(args.out, world, device, cfg, len(images))
    fingerprint = {**cfg.to_dict(), "checkpoint_sha256": sha256_file(checkpoint), "data": str(Path(args.data)
                   .resolve()), "input": inp.kind, "images": int(len(images)), "indices": digest(indices),
                   "device": str(device), "deterministic": bool(args.deterministic),
                   # the settings as resolved, not as typed: a method default changed since is another run
                   "recipes": recipes(cfg)}
    done = store.start(fingerprint, args.resume)
    if done:
        print(f"resuming: {done} finished cell(s) in {store.dir} are kept", file=sys.stderr)
        if cfg.protocol == "continual":
            print("resuming: a continual stream left partly done restarts from its first corruption (the state "
                  "it carried is not stored)", file=sys.stderr)
    total = len(images) * len(methods) * len(shifts(cfg))
    interrupted, stopped = False, None
    run_eval = store.evaluate if world.size > 1 else evaluate   # a rank's parts, merged on rank 0
    with Progress(total, "eval", enabled=not args.no_progress and world.rank == 0) as bar:   # rank 0 shows all
        try:
            result = run_eval(model, stats, None if shifted else images, labels, indices, cfg, device,
                              progress=lambda k, text: bar.update(k, text), store=store, shifted=shifted)
        except KeyboardInterrupt:   # Ctrl+C: the finished cells and a summary of them
            interrupted = True
            result = collect(store, cfg)
        except RankFailed as exc:   # another rank died: the finished cells and a summary of them
            stopped = exc
            result = collect(store, cfg)
    if world.rank:   # rank 0 writes the files and speaks for the run
        if stopped is not None and not stopped.quiet:
            print(f"tttgui eval: {stopped}", file=sys.stderr)
        return 130 if interrupted else 1 if stopped is not None else 0
    command = ("tttgui eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["eval"]
               else "tttgui eval (called from Python)")
    info = run_record(result, cfg, command, checkpoint=str(checkpoint),
                      checkpoint_meta={k: payload.get("meta", {}).get(k)
                                       for k in ("clean_error", "command", "train_seconds")},
                      data=str(args.data), input=inp.record(), images=int(len(images)), limit=args.limit, seed=args.seed,
                      device=str(device), deterministic=bool(args.deterministic),
                      tf32=bool(torch.backends.cuda.matmul.allow_tf32), threads=torch.get_num_threads(), data_classes=list(inp.classes),
                      indices=[int(i) for i in indices], complete=not (interrupted or stopped or result.cancelled),
                      cells={"finished": len(result.summary), "total": len(methods) * len(shifts(cfg))})
    out = write_result(args.out, result, info)
    if interrupted or stopped is not None:
        print(f"tttgui eval: {stopped or 'interrupted'}; {len(result.summary)} of {info['cells']['total']} cells "
              f"finished, summarised in {out / 'summary.csv'}; the same command with --resume continues",
              file=sys.stderr)
        return 130 if interrupted else 1
    print(table(result.summary))
    # what each column runs on this model, where its name says more than the column ("ttt = TTT" says nothing)
    named = {m: n for m in methods if m != "source" and (n := get_method(m).display_name(model)).lower() != m}
    if named:       # the table's columns are registry names (as in summary.csv); what each one runs here
        print("methods: " + "; ".join(f"{m} = {n}" for m, n in named.items()))
    if (labels == UNLABELED).any():
        print(f"no labels in {args.data}: predictions only (images.csv), no error rate")
    print(f"wrote {out / 'summary.csv'}, {out / 'images.csv'}, {out / 'run.json'} ({result.seconds:.1f}s)")
    return 0
