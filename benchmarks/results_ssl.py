"""Han et al. 2025's setting on our self-supervised model (issue 18, item 4) -> docs/results_ssl.md, which
docs/results.md links as its self-supervised section.

For each model given as NAME=CHECKPOINT (the SimCLR encoder with a prototype classifier from all labels, and from
30 per class; the supervised model may be added as the paper's "source-pretrained" reference; --model-methods gives
one model its own list, e.g. the paper's AWS-FS row is no adaptation and AWS only): one continual stream per method
over the 15 CIFAR-10-C corruptions at severity 5 in CoTTA's order (batches of 16, never reset,
no boundary given), through `tttgui eval`'s engine: no adaptation, Tent, TTT++ and AWS with their recipes. Error %
per corruption and mean-15, beside the paper's numbers (ViT-B/16). Each model's cells go to --work/<slug>/cells/
as its streams finish; a rerun reads them back while the checkpoint, images and seed are unchanged.

  python benchmarks/results_ssl.py --data ../shared/data/cifar10/test \
      --model "SimCLR + prototypes, all labels=PATH" --model "SimCLR + prototypes, 30 per class=PATH"
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tttgui.atomic import write_text  # noqa: E402
from tttgui.errors import UserError  # noqa: E402
from tttgui.evaluation import EvalConfig, check_config, evaluate  # noqa: E402
from tttgui.methods import MethodConfig, display_name  # noqa: E402
from tttgui.protocols import paper_order  # noqa: E402
from tttgui.results import summarise  # noqa: E402
from tttgui.store import CellStore  # noqa: E402

# Tent twice: at its paper's lr (1e-3, for batches of 200) and scaled linearly to the stream's 16 (8e-5), the rule
# Han et al. apply to AWS (base x batch / 64); both fixed before any run, neither picked on the test stream.
# TTT++ likewise at its recipe's 0.01 and at the 1e-3 chosen for the supervised GroupNorm model on four held-out
# corruptions (docs/results.md), where 0.01 collapsed.
METHODS = ("source", "tent", "tent@8e-5", "ttt++", "ttt++@1e-3", "aws")
SEVERITY = 5
# Han et al. 2025, CIFAR-10-C severity 5, continual, mean error % (ViT-B/16; ../shared/research/han2025.md)
PAPER = (("supervised ViT-B/16", "28.2", "23.5", "10.8", "—"), ("DINO ViT-B/16", "44.3", "43.5", "26.8", "28.2"),
         ("MoCo v3 ViT-B/16", "42.2", "42.7", "40.7", "43.9"), ("iBOT ViT-B/16", "48.0", "45.8", "30.1", "31.6"))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "test"))
    p.add_argument("--model", action="append", required=True, help="NAME=CHECKPOINT (repeat)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--model-methods", action="append", default=[], metavar="NAME=METHODS",
                   help="another method list for one model, e.g. the 30-per-class model's 'source,aws' (repeat)")
    p.add_argument("--images", type=int, help="test images per corruption, drawn by --seed (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frost-dir", default=str(ROOT.parent / "shared" / "data" / "frost"))
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "results_work" / "ssl"))
    p.add_argument("--out", default=str(ROOT / "docs" / "results_ssl.md"))
    p.add_argument("--threads", type=int)
    p.add_argument("--report-only", action="store_true", help="compute nothing; write the page from the cells")
    return p.parse_args(argv)


def slug(name: str, sha: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] + "-" + sha[:12]


def applicable(model, stats: dict, cfg: EvalConfig, method: str) -> str | None:
    """None when the method runs on this model, else why not (one line for the page): the engine's checks, and
    the method's own when it is built (TTT++ needs source statistics of its head's output)."""
    from tttgui.methods import Adapter

    try:
        check_config(EvalConfig(corruptions=cfg.corruptions, severities=cfg.severities, methods=(method,),
                                settings=cfg.settings), model)
        Adapter(model, stats, cfg.method_config(method), "cpu")
    except UserError as exc:
        return str(exc)
    return None


def model_methods(args) -> dict[str, str]:
    """{model name: its own --methods} from --model-methods NAME=METHODS; a name no --model has is an error."""
    names = {spec.partition("=")[0] for spec in args.model}
    out = {}
    for spec in args.model_methods:
        name, eq, methods = spec.partition("=")
        if not eq or name not in names or not methods:
            raise SystemExit(f"error: --model-methods {spec!r}: expected NAME=METHODS with the NAME of a --model "
                             f"({', '.join(sorted(names))})")
        out[name] = methods
    return out


def run_model(name: str, path: str, args, images, labels, indices, method_list: str) -> dict:
    """{method: [rows]} of one model, computed or read back; {method: reason} for methods that cannot run."""
    from tttgui.models import load_checkpoint
    from tttgui.models.checkpoint import require_classifier

    model, payload = load_checkpoint(path, "cpu")
    require_classifier(payload, path)
    stats = payload.get("source_stats") or {}
    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    corruptions = tuple(paper_order())
    base = EvalConfig(corruptions=corruptions, severities=(SEVERITY,), methods=("source",),
                      frost_dir=args.frost_dir if Path(args.frost_dir).is_dir() else None,
                      settings=MethodConfig(protocol="continual", seed=args.seed))
    methods = [m for m in method_list.split(",") if m]      # "tent@8e-5": tent at that lr (a row of its own)
    skipped = {m: why for m in methods if (why := applicable(model, stats, base, m.partition("@")[0]))}
    runs = [m for m in methods if m not in skipped]
    rows = {}
    for lr in dict.fromkeys(lr_of(m) for m in runs):     # one continual evaluation per lr, in order
        group = [m for m in runs if lr_of(m) == lr]
        settings = MethodConfig(protocol="continual", seed=args.seed, lr=lr)
        cfg = EvalConfig(corruptions=corruptions, severities=(SEVERITY,), methods=tuple(m.partition("@")[0]
                         for m in group), frost_dir=base.frost_dir, settings=settings)
        store = CellStore(Path(args.work) / (slug(name, sha) + ("" if lr is None else f"-lr{lr:g}")))
        if not args.report_only:
            store.start({"checkpoint_sha256": sha, "images": len(indices), "seed": args.seed, **cfg.to_dict()},
                        resume=True)
            result = evaluate(model, stats, images, labels, indices, cfg, "cpu", store=store,
                              progress=lambda k, text: None)
            for r in result.images:
                rows.setdefault(next(m for m in group if m.partition("@")[0] == r.method), []).append(r)
        else:
            for m in group:
                got = [r for c in corruptions if (cell := load(store, (c, SEVERITY, m.partition("@")[0])))
                       for r in cell]
                if got:
                    rows[m] = got
    names = {m: ("source (no adaptation)" if m == "source" else display_name(m.partition("@")[0], model))
             + ("" if lr_of(m) is None else f" (lr {lr_of(m):g})") for m in methods}
    return {"rows": rows, "skipped": skipped, "names": names, "sha": sha, "path": path}


def lr_of(method: str) -> float | None:
    """'tent@8e-5' -> 8e-05; 'tent' -> None (the method's own lr)."""
    _, at, lr = method.partition("@")
    if not at:
        return None
    try:
        return float(lr)
    except ValueError:
        raise SystemExit(f"error: --methods {method!r}: expected METHOD or METHOD@LR, e.g. tent@8e-5") from None


def load(store: CellStore, key):
    return store.load(key) if store.path(key).is_file() else None


def render(models: dict, args, n: int) -> str:
    order = paper_order()
    head = "| model | method | " + " | ".join(order) + " | mean-15 | CPU h |"
    L = ["# Test-time adaptation of a self-supervised model (Han et al. 2025's setting)", "",
         "Generated by `benchmarks/results_ssl.py`; do not edit by hand. Error % (lower is better), continual "
         f"stream over the 15 CIFAR-10-C corruptions at severity {SEVERITY} in CoTTA's order, batches of 16, never "
         f"reset; {n} test images per corruption (seed {args.seed}). \"pending\": not computed yet.", "",
         "## Paper (Han et al. 2025, ViT-B/16, mean-15)", "",
         "| model | no adaptation | Tent | AWS | AWS-FS (30 per class) |", "|---|---|---|---|---|"]
    L += ["| " + " | ".join(row) + " |" for row in PAPER]
    L += ["", "## Measured", "", head, "|" + "---|" * (len(order) + 4)]
    for name, m in models.items():
        for method, label in m["names"].items():
            if method in m["skipped"]:
                L.append(f"| {name} | {label} | " + " | ".join(["n/a"] * len(order))
                         + f" | n/a | — |")
                continue
            rows = m["rows"].get(method, [])
            by = {}
            for r in rows:
                by.setdefault(r.corruption, []).append(r)
            errs = [summarise(by[c]).error_after if c in by else None for c in order]
            mean = "pending" if any(e is None for e in errs) else f"{np.mean(errs):.1f}"
            hours = sum(r.seconds for r in rows) / 3600
            L.append(f"| {name} | {label} | " + " | ".join("pending" if e is None else f"{e:.1f}" for e in errs)
                     + f" | {mean} | {hours:.2f} |")
    notes = [f"- **{name}** / {method}: {why}" for name, m in models.items() for method, why in m["skipped"].items()]
    if notes:
        L += ["", "Not run (the method does not apply to that checkpoint):", ""] + notes
    from tttgui.methods.aws import open_choices

    L += ["", "## What the paper leaves open and we chose", "", f"AWS (`tttgui/methods/aws.py`). {open_choices()}", "",
          "Baselines: the paper gives no learning rates for them. Tent runs at its own CIFAR-10-C lr (Adam 1e-3, "
          "set for batches of 200) and at that lr scaled linearly to the stream's batch of 16 (8e-5, the rule "
          "the paper applies to AWS); TTT++ at its recipe (SGD 0.01) and at 1e-3, the lr chosen for the supervised "
          "GroupNorm model on four held-out corruptions (where 0.01 collapsed). All fixed in advance, "
          "none picked on the test stream.", "",
          "## Run", "", f"- Date: {datetime.datetime.now().isoformat(timespec='seconds')}"]
    L += [f"- {name}: `{m['path']}` (sha256 {m['sha'][:16]}…)" for name, m in models.items()]
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    import torch

    from tttgui.data import open_dataset
    from tttgui.data.labels import model_labels

    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = open_dataset(args.data)
    n = len(ds) if args.images is None else min(args.images, len(ds))
    indices = np.sort(np.random.default_rng(args.seed).permutation(len(ds))[:n])
    images, labels = ds.arrays(indices)
    models, own = {}, model_methods(args)
    for spec in args.model:
        name, _, path = spec.partition("=")
        if not path or not Path(path).is_file():
            raise SystemExit(f"error: --model {spec!r}: expected NAME=CHECKPOINT of an existing file")
        from tttgui.models import load_checkpoint

        _, payload = load_checkpoint(path, "cpu")
        y = model_labels(labels, list(ds.classes), payload["classes"], f"data {args.data}")
        models[name] = run_model(name, path, args, images, y, indices, own.get(name, args.methods))
        write_text(args.out, render(models, args, n))   # a partial run still leaves a valid page
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
