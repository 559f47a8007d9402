"""`tttgui stats`: (re)compute the source statistics stored in a checkpoint, on images of its training data.

ActMAD and TTT++ align to these statistics and the explorer measures feature distances to them. Use it for a
checkpoint whose statistics are missing (a timm backbone given new heads) or were taken on other images.
"""
from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path

from tttgui.atomic import write_text
from tttgui.errors import shown


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", help="tttgui checkpoint (.pt); default: the shipped model")
    p.add_argument("--data", required=True, help="source (training) images, e.g. ../shared/data/cifar10/train")
    p.add_argument("--images", type=int, default=10000, help="images drawn at random from --data (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw and of the crop/flip augmentation")
    p.add_argument("--out", help="where to write the updated checkpoint (.pt; its card goes beside it)")
    p.add_argument("--in-place", action="store_true",
                   help="write the statistics into --checkpoint itself (needed to change a shipped model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def run(args) -> int:
    import torch

    from tttgui.data import open_dataset
    from tttgui.data.subset import Subset
    from tttgui.device import resolve_device
    from tttgui.errors import UserError
    from tttgui.models import default_checkpoint_path, load_checkpoint
    from tttgui.models.checkpoint import CORE_KEYS, save_checkpoint
    from tttgui.stats import source_statistics, statistics_augment, statistics_draw
    from tttgui.model_card import stats_card_line, stats_provenance

    from tttgui.commands import checks

    checks.at_least("--images", args.images, 1)
    checks.seed(args.seed)
    checkpoint = Path(args.checkpoint or default_checkpoint_path())
    if args.in_place == bool(args.out):
        raise UserError("expected exactly one of --out FILE.pt (a new checkpoint) or --in-place (rewrite "
                        f"{checkpoint} itself)")
    out = checkpoint if args.in_place else checks.checkpoint_out("--out", args.out)
    if not args.in_place and out.resolve() == checkpoint.resolve():
        raise UserError(f"--out {args.out} is the input checkpoint; expected another file, or --in-place")
    checks.input_path("--data", args.data)
    if args.in_place:
        checks.writable_folder("--in-place", checkpoint.parent)
    device = resolve_device(args.device)
    model, payload = load_checkpoint(checkpoint, device)
    ds = open_dataset(args.data, split="train")    # source statistics: never a root's test split by default
    n = len(ds)
    k = min(args.images, n)
    # Decode only the images used, drawn as the trainer draws them from the whole folder (same images and crops).
    idx, g = statistics_draw(n, k, args.seed)
    images, _ = Subset(ds, idx.numpy(), note=f"{k} images, seed {args.seed}").arrays()
    size = model.spec.input_size
    if images.shape[1:3] != (size, size):
        raise UserError(f"images of {args.data} are {images.shape[2]}×{images.shape[1]}; expected {size}×{size} "
                        f"(the model's input size)")
    t0 = time.perf_counter()
    stats = source_statistics(model, statistics_augment(torch.from_numpy(images), g), device)
    meta = dict(payload.get("meta") or {})
    meta["source_stats"] = {**stats_provenance(args.data, k, args.seed), "command": _command()}
    extra = {key: v for key, v in payload.items() if key not in CORE_KEYS}
    save_checkpoint(out, model, payload["classes"], stats, meta, extra)
    _update_card(out.with_suffix(".md"), stats_card_line(meta["source_stats"]))
    print(shown(f"wrote {out}: source statistics of {k} images of {args.data} ({time.perf_counter() - t0:.0f} s)"))
    return 0


def _command() -> str:
    if sys.argv[1:2] == ["stats"]:
        return "tttgui stats " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    return "tttgui stats (called from Python)"


def _update_card(card: Path, line: str) -> None:
    """Replace (or add) the card's source-statistics line, when the checkpoint has a card beside it."""
    if not card.is_file():
        return
    text = card.read_text()
    if re.search(r"^- Source statistics: .*$", text, flags=re.M):
        text = re.sub(r"^- Source statistics: .*$", lambda _: line, text, count=1, flags=re.M)
    else:   # after the last top bullet of the card
        lines = text.split("\n")
        last = max((i for i, s in enumerate(lines) if s.startswith("- ")), default=len(lines) - 1)
        lines.insert(last + 1, line)
        text = "\n".join(lines)
    write_text(card, shown(text))     # a path with undecodable bytes is written as \xNN
