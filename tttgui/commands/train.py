"""`tttgui train`: self-supervised pretraining, then joint fine-tuning; writes checkpoint + model card."""
from __future__ import annotations

import shlex
import sys

from tttgui.models import HEADS


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="labeled images for fine-tuning (phase 2)")
    p.add_argument("--unlabeled", help="images for self-supervised pretraining (phase 1, labels never read); "
                   "default: the --data images")
    p.add_argument("--test", help="clean test images: error and rotation accuracy go into the model card")
    p.add_argument("--out", required=True, help="checkpoint to write (.pt); a .md model card goes beside it")
    p.add_argument("--label-fraction", type=float, default=1.0, help="fine-tune on this fraction of the labels")
    p.add_argument("--ssl-epochs", type=int, default=2, help="phase-1 epochs (default 2)")
    p.add_argument("--epochs", type=int, default=25, help="phase-2 epochs (default 25)")
    p.add_argument("--swa-epochs", type=int, default=0,
                   help="after the joint epochs, this many more at a constant lr; the checkpoint is the mean of "
                   "their epoch-end weights (stochastic weight averaging; default 0: off)")
    p.add_argument("--swa-lr", type=float, default=0.01, help="the constant lr of the SWA epochs (default 0.01)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--heads", default="rotation", help=f"comma list of {', '.join(HEADS)}")
    p.add_argument("--norm", choices=["gn", "bn"], default="gn")
    p.add_argument("--limit", type=int, help="use only N images of each set (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--cache-dir", default=None, help="where decoded image arrays are cached")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out>.state.pt if present; a larger --epochs restarts the cosine, a larger "
                   "--swa-epochs extends the average, and the model card lists what each resume changed")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import torch

    from tttgui.device import resolve_device
    from tttgui.errors import UserError
    from tttgui.training import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    heads = tuple(h.strip() for h in args.heads.split(",") if h.strip())
    bad = [h for h in heads if h not in HEADS]
    if bad:
        raise UserError(f"unknown head(s) {bad}; expected a comma list of {', '.join(HEADS)}")
    if min(args.epochs, args.ssl_epochs, args.swa_epochs) < 0:
        raise UserError("--epochs, --ssl-epochs and --swa-epochs must be >= 0")
    if not args.swa_lr > 0:
        raise UserError(f"--swa-lr {args.swa_lr} is out of range; expected a positive learning rate")
    cfg = TrainConfig(
        data=args.data, out=args.out, unlabeled=args.unlabeled, test=args.test,
        label_fraction=args.label_fraction, ssl_epochs=args.ssl_epochs, epochs=args.epochs,
        swa_epochs=args.swa_epochs, swa_lr=args.swa_lr,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, heads=heads, norm=args.norm,
        seed=args.seed, device=str(resolve_device(args.device)), limit=args.limit, cache_dir=args.cache_dir,
        command="tttgui train " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["train"]
        else "tttgui train (called from Python)",
        progress=not args.no_progress)
    meta = train(cfg, resume=args.resume, log=lambda s: print(s, flush=True))
    summary = ", ".join(f"{k} {meta[k]}" for k in ("clean_error", "rotation_accuracy", "train_seconds")
                        if k in meta)
    print(f"wrote {args.out} ({summary})")
    return 0
