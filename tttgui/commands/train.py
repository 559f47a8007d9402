"""`tttgui train`: self-supervised pretraining, then joint fine-tuning; writes checkpoint + model card."""
from __future__ import annotations

import shlex
import sys

from tttgui.models import HEADS


def add_arguments(p) -> None:
    p.add_argument("--labeled", "--data", dest="data", required=True,
                   help="labeled images for fine-tuning (phase 2; --data is the old name)")
    p.add_argument("--unlabeled", help="images for self-supervised pretraining (phase 1, labels never read); "
                   "default: the --data images")
    p.add_argument("--test", help="clean test images: error and rotation accuracy go into the model card")
    p.add_argument("--out", required=True, help="checkpoint to write (.pt); a .md model card goes beside it")
    p.add_argument("--label-fraction", type=float, default=1.0,
                   help="fine-tune on this fraction of the labels, drawn class-balanced by --seed")
    p.add_argument("--labels-per-class", type=int, help="fine-tune on N labeled images of every class instead")
    p.add_argument("--ssl", default="rotation",
                   help="phase-1 self-supervised task: rotation, simclr or rotation+simclr (default rotation)")
    p.add_argument("--finetune", default="joint",
                   help="phase 2: joint (classifier + self-supervised heads, the TTT paper's training), full "
                   "(cross-entropy alone, all weights), linear (a probe on frozen features), prototypes (the cosine "
                   "classifier of class means, by forward passes only) or none (keep the "
                   "self-supervised model, e.g. for methods that build their own classifier)")
    p.add_argument("--ssl-epochs", type=int, default=2, help="phase-1 epochs (default 2)")
    p.add_argument("--ssl-lr", type=float, help="phase-1 peak lr (default: --lr)")
    p.add_argument("--ssl-batch-size", type=int, help="phase-1 batch size (default: --batch-size)")
    p.add_argument("--epochs", type=int, help="phase-2 epochs (default 25)")
    p.add_argument("--swa-epochs", type=int, default=0,
                   help="after the joint epochs, this many more at a constant lr; the checkpoint is the mean of "
                   "their epoch-end weights (stochastic weight averaging; default 0: off)")
    p.add_argument("--swa-lr", type=float, default=0.01, help="the constant lr of the SWA epochs (default 0.01)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--heads", default="rotation", help=f"comma list of {', '.join(HEADS)}")
    p.add_argument("--norm", choices=["gn", "bn"],
                   help="resnet26's normalisation: gn (GroupNorm, the TTT paper's; default) or bn")
    p.add_argument("--rotation", choices=["expand", "random"], default="random",
                   help="rotation task: all four rotations of each image (expand, the TTT code's) or one at random")
    p.add_argument("--arch",
                   help="resnet26 (the TTT paper's ResNet-26; default) or timm:NAME (any timm model, trained at "
                   "the data's image size); with --init, the checkpoint's")
    p.add_argument("--init", help="start from this checkpoint's weights (e.g. the self-supervised model, with "
                   "--ssl-epochs 0 to fine-tune it)")
    p.add_argument("--weights", help="timm: initial backbone weights, a .safetensors or .pth state dict")
    p.add_argument("--limit", type=int, help="use only N images of each set (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--deterministic", action="store_true",
                   help="TF32 off, deterministic cuDNN and algorithms, seeded CUDA generators (slower on GPUs)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: autocast convolutions and matmuls to bfloat16 (weights and losses stay float32); "
                   "about 2x faster on CPUs with AVX-512 BF16 and on recent GPUs (default fp32)")
    p.add_argument("--stats-images", type=int, default=10000,
                   help="training images the stored source statistics are computed on (default 10000)")
    p.add_argument("--cache-dir", default=None, help="where decoded image arrays are cached")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out>.state.pt if present; a larger --epochs restarts the cosine, a larger "
                   "--swa-epochs extends the average, and the model card lists what each resume changed")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import torch

    from tttgui.device import resolve_device
    from tttgui.errors import shown
    from tttgui.training import TrainConfig, train

    check_arguments(args)
    unused = [f"{o} {v}" for o, v in (("--epochs", args.epochs), ("--swa-epochs", args.swa_epochs)) if v]
    if unused and args.finetune not in ("joint", "full"):
        print(f"note: --finetune {args.finetune} trains no epochs after phase 1; {' and '.join(unused)} not used",
              flush=True)
    args.epochs = 25 if args.epochs is None else args.epochs
    args.arch, args.norm = args.arch or "resnet26", args.norm or "gn"
    if args.threads:
        torch.set_num_threads(args.threads)
    heads = tuple(h.strip() for h in args.heads.split(",") if h.strip())
    cfg = TrainConfig(
        data=args.data, out=args.out, unlabeled=args.unlabeled, test=args.test,
        label_fraction=args.label_fraction, labels_per_class=args.labels_per_class, arch=args.arch,
        weights=args.weights, init=args.init, stats_images=args.stats_images, ssl=args.ssl, finetune=args.finetune, ssl_lr=args.ssl_lr,
        ssl_batch_size=args.ssl_batch_size, ssl_epochs=args.ssl_epochs, epochs=args.epochs,
        swa_epochs=args.swa_epochs, swa_lr=args.swa_lr, rotation=args.rotation,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, heads=heads, norm=args.norm,
        seed=args.seed, device=str(resolve_device(args.device)), deterministic=args.deterministic,
        precision=args.precision,
        limit=args.limit, cache_dir=args.cache_dir,
        command=shown("tttgui train " + " ".join(shlex.quote(a) for a in sys.argv[2:])) if sys.argv[1:2] == ["train"]
        else "tttgui train (called from Python)",
        progress=not args.no_progress)
    meta = train(cfg, resume=args.resume, log=lambda s: print(s, flush=True))
    summary = ", ".join(f"{k} {meta[k]}" for k in ("clean_error", "rotation_accuracy", "train_seconds")
                        if k in meta)
    print(shown(f"wrote {args.out} ({summary})"))
    return 0


def check_arguments(args) -> None:
    """Every value that can be judged before the data is read: one line each, before any work."""
    from pathlib import Path

    from tttgui.commands import checks
    from tttgui.errors import UserError
    from tttgui.training import FINETUNE, ssl_tasks

    checks.threads(args.threads)
    checks.seed(args.seed)
    for option, value in (("--epochs", args.epochs), ("--ssl-epochs", args.ssl_epochs),
                          ("--swa-epochs", args.swa_epochs)):
        checks.at_least(option, value, 0)
    for option, value in (("--batch-size", args.batch_size), ("--ssl-batch-size", args.ssl_batch_size),
                          ("--limit", args.limit), ("--stats-images", args.stats_images)):
        checks.at_least(option, value, 1)
    for option, value in (("--lr", args.lr), ("--ssl-lr", args.ssl_lr), ("--swa-lr", args.swa_lr)):
        checks.positive(option, value)
    checks.non_negative("--weight-decay", args.weight_decay)
    heads = [h.strip() for h in args.heads.split(",") if h.strip()]    # "" keeps only the --ssl heads
    bad = [h for h in heads if h not in HEADS]
    if bad:
        raise UserError(f"--heads {args.heads!r} names unknown head(s) {bad}; expected a comma list of "
                        f"{', '.join(HEADS)}")
    ssl_tasks(args.ssl)
    if args.finetune not in FINETUNE:
        raise UserError(f"--finetune {args.finetune!r} is unknown; expected one of {', '.join(FINETUNE)}")
    if not 0 < args.label_fraction <= 1:
        raise UserError(f"--label-fraction {args.label_fraction} is out of range; expected 0 < f <= 1")
    checks.at_least("--labels-per-class", args.labels_per_class, 1)
    if args.labels_per_class and args.label_fraction != 1:
        raise UserError("--labels-per-class and --label-fraction both given; expected one of them")
    if args.init and (args.arch or args.norm):
        init_architecture(args)
    if args.arch not in (None, "resnet26"):
        if not args.arch.startswith("timm:"):
            raise UserError(f"--arch {args.arch!r} is unknown; expected resnet26 or timm:NAME")
        from tttgui.models.factory import check_timm_name
        check_timm_name(args.arch[len("timm:"):])
    if args.weights:
        if not (args.arch or "").startswith("timm:"):
            raise UserError("--weights goes with --arch timm:NAME; expected no --weights for resnet26")
        checks.input_path("--weights", args.weights)
    for option, path in (("--labeled", args.data), ("--unlabeled", args.unlabeled), ("--test", args.test)):
        checks.input_path(option, path)
    checks.input_path("--init", args.init)
    checks.cache_dir(args.cache_dir)
    out = checks.checkpoint_out("--out", args.out)
    if checks.shipped(out):
        raise UserError(f"--out {args.out} is a model shipped with tttgui; expected another file name")
    state = out.with_suffix(".state.pt")
    if state.exists() and not args.resume:
        raise UserError(f"{state} holds a resumable training state; expected --resume to continue it, or "
                        "another --out (or delete the state) to start afresh")
    for option, path in (("--labeled", args.data), ("--unlabeled", args.unlabeled), ("--test", args.test)):
        if path and Path(path).resolve() in (out.resolve(), out.with_suffix(".md").resolve()):
            raise UserError(f"--out {args.out} would write over {option} {path}; expected another file name")


def init_architecture(args) -> None:
    """--arch or --norm with --init: the network is the checkpoint's, so a different one given is refused (it was
    silently ignored: --norm bn with a GroupNorm checkpoint trained GroupNorm, the card said gn)."""
    from tttgui.errors import UserError
    from tttgui.models.checkpoint import read_checkpoint

    spec = read_checkpoint(args.init).get("spec") or {}
    arch, norm = spec.get("arch"), (spec.get("arch_args") or {}).get("norm")
    if args.arch and args.arch != arch:
        raise UserError(f"--arch {args.arch} differs from the architecture of --init {args.init} ({arch}); "
                        "expected no --arch with --init, or the same")
    if args.norm and args.norm != norm:
        raise UserError(f"--norm {args.norm} differs from the normalisation of --init {args.init} "
                        f"({norm or 'that of ' + str(arch)}); "
                        "expected no --norm with --init, or the same")
