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
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tttgui.atomic import write_text  # noqa: E402
from tttgui.errors import UserError  # noqa: E402
from tttgui.evaluation import EvalConfig, check_config, evaluate, recipes  # noqa: E402
from tttgui.methods import MethodConfig, display_name  # noqa: E402
from tttgui.protocols import paper_order  # noqa: E402
from tttgui.results import USE_SHARE, classes_in_use, summarise  # noqa: E402
from tttgui.store import CellStore  # noqa: E402

# Tent twice: at its paper's lr (1e-3, for batches of 200) and scaled linearly to the stream's 16 (8e-5), the rule
# Han et al. apply to AWS (base x batch / 64); both fixed before any run, neither picked on the test stream.
# TTT++ likewise at its recipe's 0.01 and at the 1e-3 chosen for the supervised GroupNorm model on four held-out
# corruptions (docs/results.md), where 0.01 collapsed.
# METHOD@heldout: the lr with the lowest mean error of a continual stream over CIFAR-10-C's four held-out
# (validation) corruptions, HELDOUT_IMAGES each, among the method's own lr times GRID (for AWS: the paper's bases
# 1e-3 ... 1e-6, x 16/64); the paper picked its lr on the test stream itself.
# aws-mean: AWS with L_cl averaged over the batch instead of summed as Eq. 3 is printed (tttgui/methods/aws.py);
# at its held-out lr only (a fixed-lr aws-mean would join the fixed methods' stream, whose finished cells were
# made for the four fixed methods alone, and the store refuses a changed method list).
METHODS = ("source", "tent", "tent@8e-5", "ttt++", "ttt++@1e-3", "aws", "tent@heldout", "ttt++@heldout",
           "aws@heldout", "aws-mean@heldout")
TITLE = "Test-time adaptation of a self-supervised model (Han et al. 2025's setting)"
HELD = "heldout"
HELDOUT = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
GRID = (1.0, 0.1, 0.01, 0.001)
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
    p.add_argument("--heldout-images", type=int, default=2000, help="images per held-out corruption (lr choice)")
    p.add_argument("--heldout-data", help="the images of the held-out streams (default: --data), e.g. the training "
                   "set, whose 50,000 images make a held-out stream as long as the test stream")
    p.add_argument("--frost-dir", default=str(ROOT.parent / "shared" / "data" / "frost"))
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "results_work" / "ssl"))
    p.add_argument("--out", default=str(ROOT / "docs" / "results_ssl.md"))
    p.add_argument("--threads", type=int)
    p.add_argument("--title", default=TITLE, help="the page's heading")
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


@dataclass
class Images:
    """One image set of the benchmark: clean images, their data-set indices, and their corrupted copies, made
    once per (corruption, severity) and kept, so every stream of every model reads the bytes evaluate() would
    make (the same corrupt() call) without making them again (~35 s a corruption of 10,000 images)."""
    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    seed: int
    frost_dir: str | None
    origin: str | None = None          # the data set, when not --data (its streams' cells record it)
    made: dict = field(default_factory=dict)

    def shifted(self, corruption: str, severity: int) -> np.ndarray:
        from tttgui.corruptions import corrupt

        if (corruption, severity) not in self.made:
            self.made[corruption, severity] = corrupt(self.images, corruption, severity, seed=self.seed,
                                                      frost_dir=self.frost_dir, device="cpu")
        return self.made[corruption, severity]


def stream(model, stats, data: Images, labels, corruptions, methods, lr, folder: Path, sha: str, args) -> dict:
    """{method: rows} of one continual evaluation (one stream per method), computed or read from the cells in
    `folder` (kept for the checkpoint of hash `sha`)."""
    store = CellStore(folder)
    cfg = EvalConfig(corruptions=tuple(corruptions), severities=(SEVERITY,), methods=tuple(methods),
                     frost_dir=data.frost_dir, settings=MethodConfig(protocol="continual", seed=args.seed, lr=lr))
    fingerprint = {"checkpoint_sha256": sha, "images": len(data.indices), "seed": args.seed, **cfg.to_dict(),
                   **({"images_from": data.origin} if data.origin else {}),
                   "recipes": recipes(cfg)}    # as resolved: a method default changed since is another run
    if args.report_only:
        why = store.mismatch(fingerprint)
        if why:     # cells of another run (other images, seed, methods): never shown as this one's numbers
            print(f"{folder}: its cells are from another run ({why}); shown as pending", file=sys.stderr)
            return {}
        out = {}
        for m in methods:
            got = [r for c in corruptions if (cell := load(store, (c, SEVERITY, m))) for r in cell]
            if got:
                out[m] = got
        return out
    store.start(fingerprint, resume=True)
    result = evaluate(model, stats, data.images, labels, data.indices, cfg, "cpu", store=store,
                      progress=lambda k, text: None, shifted=data.shifted)
    out = {}
    for r in result.images:
        out.setdefault(r.method, []).append(r)
    return out


def mean_error(rows, corruptions) -> float | None:
    """Mean over `corruptions` of each one's error after adaptation; None while one of them is missing."""
    by = {}
    for r in rows:
        by.setdefault(r.corruption, []).append(r)
    if any(c not in by for c in corruptions):
        return None
    return float(np.mean([summarise(by[c]).error_after for c in corruptions]))


def own_lr(model, stats, method: str, seed: int) -> float:
    """The lr the method's recipe uses in the continual stream (batches of 16)."""
    from tttgui.methods import Adapter

    return Adapter(model, stats, MethodConfig(method, protocol="continual", seed=seed), "cpu").recipe.lr


def heldout_sweep(model, stats, method: str, base: float, data: Images, labels, work: Path, sha: str,
                  args) -> dict:
    """{lr: mean error % of the continual stream over the four held-out corruptions, or None while pending} for
    the method's own lr `base` times each GRID factor, and the seconds those streams cost."""
    errors, seconds = {}, 0.0
    for f in GRID:
        lr = float(f"{base * f:.3g}")
        rows = stream(model, stats, data, labels, HELDOUT, [method], lr,
                      work.with_name(f"{work.name}-{heldout_tag(args)}-{method}-lr{lr:g}"), sha, args).get(method, [])
        errors[lr] = mean_error(rows, HELDOUT)
        seconds += sum(r.seconds for r in rows)
    return {"errors": errors, "seconds": seconds}


def heldout_tag(args) -> str:
    """The held-out sweeps' folder tag: 'heldout' on --data, 'heldout-train' on --heldout-data .../train."""
    return HELD + (f"-{Path(args.heldout_data).name}" if args.heldout_data else "")


def run_model(name: str, path: str, args, main: Images, heldout: Images, labels: dict, method_list: str) -> dict:
    """{method: [rows]} of one model, computed or read back; {method: reason} for methods that cannot run;
    for each METHOD@heldout row, its held-out sweep and the lr it chose."""
    from tttgui.models import load_checkpoint
    from tttgui.models.checkpoint import require_classifier

    model, payload = load_checkpoint(path, "cpu")
    require_classifier(payload, path)
    stats = payload.get("source_stats") or {}
    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    corruptions = tuple(paper_order())
    base = EvalConfig(corruptions=corruptions, severities=(SEVERITY,), methods=("source",),
                      frost_dir=main.frost_dir, settings=MethodConfig(protocol="continual", seed=args.seed))
    methods = [m for m in method_list.split(",") if m]  # "tent@8e-5": tent at that lr; "tent@heldout": see GRID
    skipped = {m: why for m in methods if (why := applicable(model, stats, base, method_of(m)))}
    runs = [m for m in methods if m not in skipped]
    work = Path(args.work) / slug(name, sha)
    rows, sweeps, chosen = {}, {}, {}
    fixed = [m for m in runs if lr_of(m) != HELD]
    for lr in dict.fromkeys(lr_of(m) for m in fixed):     # one continual evaluation per lr, in order
        group = [m for m in fixed if lr_of(m) == lr]
        folder = work if lr is None else work.with_name(f"{work.name}-lr{lr:g}")
        got = stream(model, stats, main, labels["main"], corruptions, [method_of(m) for m in group], lr, folder,
                     sha, args)
        rows.update({m: got[method_of(m)] for m in group if method_of(m) in got})
    for m in runs:
        if lr_of(m) != HELD:
            continue
        method = method_of(m)
        base = own_lr(model, stats, method, args.seed)
        sweeps[m] = sweep = heldout_sweep(model, stats, method, base, heldout, labels["heldout"], work, sha, args)
        sweep["label"] = display_name(method, model)
        if any(e is None for e in sweep["errors"].values()):
            continue                                         # pending: no choice yet
        chosen[m] = lr = min(sweep["errors"], key=sweep["errors"].get)    # the first of equal errors: the larger lr
        same = [f for f in fixed if method_of(f) == method and math.isclose(
            base if lr_of(f) is None else lr_of(f), lr, rel_tol=1e-6)]
        if same:                                             # that stream is already a row of its own
            if same[0] in rows:
                rows[m] = rows[same[0]]
            continue
        got = stream(model, stats, main, labels["main"], corruptions, [method], lr,
                     work.with_name(f"{work.name}-{method}-lr{lr:g}"), sha, args)
        if method in got:
            rows[m] = got[method]
    names = {m: row_name(m, model, chosen) for m in methods}
    return {"rows": rows, "skipped": skipped, "names": names, "sha": sha, "path": path, "sweeps": sweeps,
            "chosen": chosen}


def row_name(m: str, model, chosen: dict) -> str:
    method, lr = method_of(m), lr_of(m)
    name = "source (no adaptation)" if method == "source" else display_name(method, model)
    if lr == HELD:
        return name + (f" (lr {chosen[m]:g}, held-out choice)" if m in chosen else " (held-out lr pending)")
    return name + ("" if lr is None else f" (lr {lr:g})")


def method_of(spec: str) -> str:
    return spec.partition("@")[0]


def lr_of(method: str) -> float | str | None:
    """'tent@8e-5' -> 8e-05; 'tent@heldout' -> 'heldout' (chosen on the held-out corruptions); 'tent' -> None
    (the method's own lr)."""
    name, at, lr = method.partition("@")
    if not at:
        return None
    if lr == HELD:
        if name == "source":
            raise SystemExit("error: --methods source@heldout: source has no learning rate")
        return HELD
    try:
        return float(lr)
    except ValueError:
        raise SystemExit(f"error: --methods {method!r}: expected METHOD, METHOD@LR (e.g. tent@8e-5) or "
                         "METHOD@heldout") from None


def load(store: CellStore, key):
    return store.load(key) if store.path(key).is_file() else None


def render(models: dict, args, n: int, n_heldout: int) -> str:
    order = paper_order()
    head = "| model | method | " + " | ".join(order) + " | mean-15 | classes in use | CPU h |"
    L = [f"# {args.title}", "",
         "Generated by `benchmarks/results_ssl.py`; do not edit by hand. Error % (lower is better), continual "
         f"stream over the 15 CIFAR-10-C corruptions at severity {SEVERITY} in CoTTA's order, batches of 16, never "
         f"reset; {n} test images per corruption (seed {args.seed}). \"pending\": not computed yet.", "",
         "## Paper (Han et al. 2025, ViT-B/16, mean-15)", "",
         "| model | no adaptation | Tent | AWS | AWS-FS (30 per class) |", "|---|---|---|---|---|"]
    L += ["| " + " | ".join(row) + " |" for row in PAPER]
    L += ["", "## Measured", "", f"\"classes in use\": how many classes get at least {USE_SHARE:.0%} of the "
          f"predictions on the stream's last corruption ({order[-1]}); 10 for a healthy model, 1 or 2 where "
          "adaptation collapsed (an error near 90 % is one class for every image).", "", head,
          "|" + "---|" * (len(order) + 5)]
    for name, m in models.items():
        for method, label in m["names"].items():
            if method in m["skipped"]:
                L.append(f"| {name} | {label} | " + " | ".join(["n/a"] * len(order))
                         + " | n/a | n/a | — |")
                continue
            rows = m["rows"].get(method, [])
            by = {}
            for r in rows:
                by.setdefault(r.corruption, []).append(r)
            errs = [summarise(by[c]).error_after if c in by else None for c in order]
            mean = "pending" if any(e is None for e in errs) else f"{np.mean(errs):.1f}"
            hours = sum(r.seconds for r in rows) / 3600
            used = classes_in_use(r.prediction_after for r in by.get(order[-1], []))
            L.append(f"| {name} | {label} | " + " | ".join("pending" if e is None else f"{e:.1f}" for e in errs)
                     + f" | {mean} | {'pending' if used is None else used} | {hours:.2f} |")
    notes = [f"- **{name}** / {method}: {why}" for name, m in models.items() for method, why in m["skipped"].items()]
    if notes:
        L += ["", "Not run (the method does not apply to that checkpoint):", ""] + notes
    sweeps = [(name, m, row, sweep) for name, m in models.items() for row, sweep in m["sweeps"].items()]
    if sweeps:
        where = f"`{args.heldout_data}`" if args.heldout_data else "test"
        L += ["", "## Learning rates chosen on held-out corruptions", "",
              f"A \"held-out choice\" row runs at the lr with the lowest mean error of a continual stream (batches of "
              f"16, never reset) over CIFAR-10-C's four held-out corruptions ({', '.join(HELDOUT)}; severity "
              f"{SEVERITY}, {n_heldout} {where} images each, seed {args.seed}: "
              f"{len(HELDOUT) * n_heldout:,} images in all), among the method's own lr times "
              f"{', '.join(f'{g:g}' for g in GRID)}; never on the 15 above. For AWS that grid is the paper's bases "
              "1e-3 … 1e-6 (x 16/64); the paper picked its lr on the test stream.", "",
              "| model | method | held-out mean error % per lr | chosen | CPU h |", "|---|---|---|---|---|"]
        for name, m, row, sweep in sweeps:
            errs = ", ".join(f"{lr:g}: " + ("pending" if e is None else f"{e:.1f}") for lr, e in sweep["errors"].items())
            pick = f"{m['chosen'][row]:g}" if row in m["chosen"] else "pending"
            L.append(f"| {name} | {sweep['label']} | {errs} | {pick} | "
                     f"{sweep['seconds'] / 3600:.2f} |")
    from tttgui.methods.aws import open_choices

    L += ["", "## What the paper leaves open and we chose", "", f"AWS (`tttgui/methods/aws.py`). {open_choices()}", "",
          "Baselines: the paper gives no learning rates for them. Tent runs at its own CIFAR-10-C lr (Adam 1e-3, "
          "set for batches of 200) and at that lr scaled linearly to the stream's batch of 16 (8e-5, the rule "
          "the paper applies to AWS); TTT++ at its recipe (SGD 0.01) and at 1e-3, the lr chosen for the supervised "
          "GroupNorm model on four held-out corruptions (where 0.01 collapsed). All fixed in advance, "
          "none picked on the test stream; the \"held-out choice\" rows pick theirs on held-out corruptions "
          "(above).", "",
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
    frost = args.frost_dir if Path(args.frost_dir).is_dir() else None

    def draw(data, count, origin=None):     # the images `--images count --seed S` draws from `data`
        idx = np.sort(np.random.default_rng(args.seed).permutation(len(data))[:min(count, len(data))])
        return Images(*data.arrays(idx), idx, args.seed, frost, origin=origin)
    main_set = draw(ds, len(ds) if args.images is None else args.images)
    # --heldout-data: the same draw on another folder (its own class order); its cells record where from
    hds = open_dataset(args.heldout_data) if args.heldout_data else ds
    heldout = draw(hds, args.heldout_images, str(args.heldout_data) if args.heldout_data else None)
    models, own = {}, model_methods(args)
    for spec in args.model:
        name, _, path = spec.partition("=")
        if not path or not Path(path).is_file():
            raise SystemExit(f"error: --model {spec!r}: expected NAME=CHECKPOINT of an existing file")
        from tttgui.models import load_checkpoint

        _, payload = load_checkpoint(path, "cpu")
        labels = {k: model_labels(d.labels, list(src.classes), payload["classes"], f"data {where}")
                  for k, d, src, where in (("main", main_set, ds, args.data),
                                           ("heldout", heldout, hds, args.heldout_data or args.data))}
        models[name] = run_model(name, path, args, main_set, heldout, labels, own.get(name, args.methods))
        write_text(args.out, render(models, args, len(main_set.indices), len(heldout.indices)))  # valid when partial
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
