"""The "with vs without self-supervision" table (issue 17) -> docs/ssl.md.

For each model given as NAME=CHECKPOINT (e.g. supervised from scratch vs SimCLR + fine-tuning, at 10 % and
100 % of the labels): clean error, and on the 15 CIFAR-10-C corruptions at severity 5 the error without
adaptation and with TTT (online, the paper's strongest protocol), their difference with a 95 % interval paired
over the images, and what each cell cost on this CPU; models trained on the same number of labels are compared
image by image (self-supervised minus supervised). Every (model, corruption, method) cell, with which images it
got wrong, is kept in --cells as it finishes, so a rerun only redraws.

  python benchmarks/ssl_table.py --data ../shared/data/cifar10/test --images 1000 \
      --model "joint training only, 100 % labels=resources/resnet26_gn_cifar10.pt" \
      --model "SimCLR, then joint, 100 % labels=resources/resnet26_gn_simclr_cifar10.pt" --out docs/ssl.md
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tttgui  # noqa: E402
from tttgui.atomic import write_text  # noqa: E402
from tttgui.corruptions import BENCHMARK_CORRUPTIONS  # noqa: E402
from tttgui.corruptions.frost import frost_source  # noqa: E402
from tttgui.data import open_dataset  # noqa: E402
from tttgui.data.labels import model_labels  # noqa: E402
from tttgui.evaluation import EvalConfig, evaluate  # noqa: E402
from tttgui.methods import MethodConfig, get_method  # noqa: E402
from tttgui.models import load_checkpoint  # noqa: E402
from tttgui.models.checkpoint import read_checkpoint, require_classifier  # noqa: E402
from tttgui.results import CLEAN, mean_interval  # noqa: E402

FROST = Path(__file__).resolve().parents[2] / "shared" / "data" / "frost"
# The code a cell's numbers come from: a cell computed by other code (a corruption or engine fix landed between
# two runs of the page) is computed again, so a row never pairs numbers of two versions.
ENGINE = ("augment.py", "cell.py", "evaluation.py", "protocols.py", "vectorized.py", "corruptions/*.py",
          "methods/base.py", "methods/adapter.py", "methods/ttt.py", "methods/source.py", "models/*.py")


@lru_cache(maxsize=1)
def engine_digest() -> str:
    root = Path(tttgui.__file__).parent
    h = hashlib.sha1()
    for f in sorted(f for pattern in ENGINE for f in root.glob(pattern)):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def cell(model, stats, x, y, idx, corruption: str, method: str, protocol: str, key: Path,
         frost_dir: str | None) -> dict:
    """Error % before/after of one (corruption, method) cell and which images it got wrong ("0110...", in the
    order of `idx`), read back from `key` when it was computed with the same resolved recipe (steps, lr, batch...:
    a changed default of the method's is another cell) by the same engine code (ENGINE)."""
    cfg = EvalConfig(corruptions=(corruption,), severities=(5,), methods=(method,), frost_dir=frost_dir,
                     settings=MethodConfig(protocol=protocol, seed=0))
    recipe = json.loads(json.dumps(get_method(method).resolve(cfg.method_config(method)).to_dict()))
    if key.is_file():
        out = json.loads(key.read_text())
        # cells of an older version lack the per-image record or the recipe: computed again
        if "wrong_after" in out and out.get("recipe") == recipe and len(out["wrong_after"]) == len(idx) \
                and out.get("engine") == engine_digest():
            return out
    t0 = time.perf_counter()
    result = evaluate(model, stats, x, y, idx, cfg, "cpu")
    row = result.summary[0]
    images = sorted(result.images, key=lambda r: r.index)
    bits = lambda ok: "".join("0" if o else "1" for o in ok)  # noqa: E731
    out = {"before": row.error_before, "after": row.error_after, "n": row.n, "seconds": time.perf_counter() - t0,
           "threads": torch.get_num_threads(), "engine": engine_digest(),
           "wrong_before": bits(r.correct_before for r in images), "wrong_after": bits(r.correct_after for r in images),
           "recipe": recipe}
    write_text(key, json.dumps(out) + "\n")
    return out


def starts(meta: dict) -> list[dict]:
    """The records of the runs a checkpoint started from (its --init, that one's --init, ...): kept in the
    checkpoint since it records them; an older one's start is read from its file (when still there)."""
    chain = []
    while True:
        record = meta.get("init_record")
        if record is None:
            init = (meta.get("config") or {}).get("init")
            if not init or not Path(init).is_file() or chain:   # an old start file may since have been replaced
                return chain
            record = read_checkpoint(init).get("meta") or {}
        chain.append(record)
        meta = record


def training_hours(meta: dict) -> str:
    """'2.50 (2.00 self-supervised)': the run's hours plus those of the --init runs it started from, and how many
    of them were self-supervised (phase-1 epochs, and all of a start without a history)."""
    own = meta.get("train_seconds")
    if own is None:
        return "?"
    total, ssl = own, 0.0
    for m in [meta, *starts(meta)]:
        phase1 = [h.get("seconds", 0) for h in m.get("history", []) if h.get("phase") == 1]
        ssl += sum(phase1) if m.get("history") or m is meta else m.get("train_seconds", 0)
        total += 0 if m is meta else m.get("train_seconds", 0)
    return f"{total / 3600:.2f}" + (f" ({ssl / 3600:.2f} self-supervised)" if ssl else "")


def epochs(meta: dict) -> str:
    """'100 + 40 + 20': self-supervised, fine-tuning and averaged (SWA) epochs, the --init runs' included: the
    fine-tuning budgets differ between models, and the clean error follows them."""
    history = [h for m in [*starts(meta), meta] for h in m.get("history", [])]
    if not history:
        return "?"
    n = Counter(h.get("phase") for h in history)
    return f"{n[1]} + {n[2]} + {n[3]}"


def finetune(meta: dict) -> str | None:
    """A checkpoint's phase-2 kind; one trained before it was recorded had the trainer's only kind then, joint."""
    if meta.get("finetune"):
        return meta["finetune"]
    return (meta["config"].get("finetune") or "joint") if meta.get("config") else None


def recipe_text(metas) -> str:
    """What the rows have in common, said only when true of every model given."""
    if metas and all(finetune(m) == "joint" and "rotation" in heads for m, heads in metas):
        return ("Every model is fine-tuned by the TTT paper's joint training (cross-entropy + rotation prediction on "
                "a shared trunk: TTT needs the rotation head), so the rows differ in the self-supervised pretraining "
                "before it (e.g. SimCLR, whose NT-Xent then joins the joint loss, or none), not in whether "
                "self-supervision is used at all.")
    return "The models' fine-tuning is on their cards (the epochs column sums their phases)."


def threads_text(cells) -> str:
    """'1 CPU thread': what the cells were computed on (one-thread shards, then a page run of any thread count
    that only reads them back); cells of an older version did not record it."""
    n = sorted({c.get("threads") for c in cells}, key=lambda t: (t is None, t or 0))
    said = [f"{t} CPU thread{'s' * (t != 1)}" if t else "an unrecorded number of threads" for t in n]
    return " or ".join(said) or "no cells"


def wrong(cells: list[dict], which: str) -> np.ndarray:
    """The cells' per-image errors (0/1): one row a cell (a corruption), one column an image."""
    return np.array([[c == "1" for c in cell_[which]] for cell_ in cells], dtype=float)


def paired(a: np.ndarray, b: np.ndarray) -> str:
    """b's error minus a's in percentage points (cells x images), with a 95 % normal interval of the per-image
    differences in which each image is one cluster: the same images recur in every corruption."""
    if a.shape != b.shape or a.shape[-1] < 2:
        return "n/a"
    d = b - a
    mean, low, high = mean_interval(d.ravel(), np.broadcast_to(np.arange(d.shape[-1]), d.shape).ravel())
    return f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def labeled_images(meta: dict):
    """How many labeled images a model was trained on: its meta's count, or for a run that used every image of its
    labeled folder (older checkpoints record no count), that folder's size when it is here; else None."""
    if meta.get("labeled_images") is not None:
        return meta["labeled_images"]
    cfg = meta.get("config") or {}
    if cfg.get("label_fraction") == 1.0 and not cfg.get("labels_per_class") and not cfg.get("limit") \
            and cfg.get("data") and Path(cfg["data"]).is_dir():
        return len(open_dataset(cfg["data"]))
    return None


def card_clean(meta: dict) -> str:
    """The training run's clean error on its whole --test folder, '13.01 (10000)', or '—' without one."""
    if meta.get("clean_error") is None:
        return "—"
    return f"{meta['clean_error']:.2f} ({meta.get('test_images', '?')})"


def jobs(model, corruptions) -> list[tuple[str, str, str, str]]:
    """(corruption, method, protocol, cell file) of a model: clean, no adaptation on each corruption, and TTT-Online
    on each when the model has the rotation head TTT needs."""
    out = [(CLEAN, "source", "episodic", "clean.json")]
    out += [(c, "source", "episodic", f"{c}-source.json") for c in corruptions]
    if "rotation" in model.spec.heads:
        out += [(c, "ttt", "online", f"{c}-ttt-online.json") for c in corruptions]
    return out


def shard(text: str) -> tuple[int, int]:
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N with 0 <= K < N, e.g. 0/2")
    return int(k), int(n)


def images_key(x: np.ndarray, y: np.ndarray, frost_dir: str | None) -> str:
    """What the cells' images are: their pixels, their labels, and whose frost texture (ours makes another
    corruption than CIFAR-10-C's). Another data folder of the same size is other cells."""
    h = hashlib.sha1(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    h.update(b"cifar10c-frost" if frost_dir else b"generated-frost")
    return f"{len(x)}-{h.hexdigest()[:10]}"


def open_model(spec: str, args, key: str):
    """(name, model, checkpoint payload, cell folder) of a NAME=CHECKPOINT argument; `key` from images_key."""
    name, _, path = spec.partition("=")
    model, payload = load_checkpoint(path, "cpu")
    require_classifier(payload, path)
    digest = hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]
    return name, model, payload, Path(args.cells) / f"{digest}-{key}"


def scored(y: np.ndarray, data_classes, payload: dict, data: str) -> np.ndarray:
    """The data's labels as this model's class indices, by name (another class order is another index)."""
    return model_labels(y, list(data_classes), payload["classes"], f"data {data}")


def compute_shard(args, x, y, classes, idx, corruptions, key: str) -> int:
    """This shard's cells: the costly TTT-Online cells dealt round-robin, and the cheap ones likewise."""
    k, n = args.shard
    dealt = {"ttt": 0, "source": 0}
    for spec in args.model:
        name, model, payload, folder = open_model(spec, args, key)
        for corruption, method, protocol, file in jobs(model, corruptions):
            mine = dealt[method] % n == k
            dealt[method] += 1
            if mine:
                out = cell(model, payload.get("source_stats") or {}, x, scored(y, classes, payload, args.data), idx,
                           corruption, method, protocol, folder / file, args.frost_dir)
                print(f"shard {k}/{n} {name}: {corruption} {method} {out['after']:.1f} % ({out['seconds']:.0f} s)",
                      flush=True)
    return 0


def comparisons(models) -> list[str]:
    """Each model against the first one given with the same number of labeled images: error differences (pp,
    95 % interval paired over the same images), so "does self-supervision help at 10 % of the labels" is one row."""
    rows = []
    for k, (name, n, clean, src, ttt) in enumerate(models):
        ref = next((m for m in models[:k] if m[1] == n and n is not None), None)
        if ref is None:
            continue
        rname, _, rclean, rsrc, rttt = ref
        both = ttt and rttt
        diff = [paired(wrong([rclean], "wrong_before"), wrong([clean], "wrong_before")),
                paired(wrong(rsrc, "wrong_before"), wrong(src, "wrong_before")),
                paired(wrong(rttt, "wrong_after"), wrong(ttt, "wrong_after")) if both else "n/a"]
        rows.append(f"| {name} − {rname} | {n} | " + " | ".join(diff) + " |")
    if not rows:
        return []
    return ["", "Same labels, with vs without: error of the second model minus the first's (pp; < 0: the second is "
            "better), 95 % interval paired over the same images (the mean columns pool the corruptions, each image "
            "one cluster: it recurs in every corruption).", "",
            "| models | labeled images | clean | no adaptation (mean) | TTT-Online (mean) |", "|---|---|---|---|---|",
            *rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", action="append", required=True, help="NAME=CHECKPOINT (repeat)")
    ap.add_argument("--images", type=int, default=1000, help="test images per corruption, drawn by seed 0")
    ap.add_argument("--corruptions", default=",".join(BENCHMARK_CORRUPTIONS))
    ap.add_argument("--cells", default="runs/ssl-cells")
    ap.add_argument("--out", default="docs/ssl.md")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shard", type=shard, default=None,
                    help="K/N: compute only every N-th cell (from the K-th; TTT-Online and no-adaptation cells dealt "
                         "separately) and write no page; N processes of one thread each finish the cells sooner "
                         "than one of N threads, then a run without --shard draws the page from them")
    ap.add_argument("--frost-dir", default=str(FROST) if FROST.is_dir() else None,
                    help="CIFAR-10-C's frost textures (default ../shared/data/frost when there; else generated ones)")
    args = ap.parse_args(argv)
    args.frost_dir = args.frost_dir or None          # "": the generated texture
    torch.set_num_threads(args.threads)
    ds = open_dataset(args.data)
    idx = np.sort(np.random.default_rng(0).permutation(len(ds))[:args.images])
    x, y = ds.arrays(idx)
    corruptions = [c for c in args.corruptions.split(",") if c]
    frost = frost_source(args.frost_dir and os.path.relpath(args.frost_dir, Path(__file__).resolve().parents[1]))
    lines = ["# With vs without self-supervised pretraining", "",
             f"Error % on {len(idx)} CIFAR-10 test images per corruption (drawn by seed 0), {len(corruptions)} "
             "CIFAR-10-C corruptions at severity 5; TTT is TTT-Online (the paper's protocol, one step per image, "
             f"weights carried through each corruption's stream); frost: {frost}. {{recipe}} The linear probe is "
             "of the self-supervised features (after pretraining, before fine-tuning), fitted on the number of "
             "labels in brackets. \"Clean, card\" is the training run's own clean error on its whole test folder "
             "(images in brackets): the finer number; this page's clean column uses the corruption columns' images, "
             "so it pairs with them. Hours are wall-clock: training's are the model cards' (threads as each card says, "
             "at times beside other jobs; a model's own run plus the runs it started from), the cells' were measured "
             "on {threads}. Generated by `benchmarks/ssl_table.py`.", "",
             "| model | labeled images | training (h) | epochs (self-supervised + fine-tuning + averaged) | "
             "linear probe (labels) | clean | clean, card (images) | no adaptation (mean "
             f"{len(corruptions)}) | TTT-Online (mean {len(corruptions)}) | TTT − none (pp, 95 %; < 0: TTT helps) | "
             "evaluation (h) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    key = images_key(x, y, args.frost_dir)      # hashed once: every model's cells are of these images
    if args.shard:
        return compute_shard(args, x, y, ds.classes, idx, corruptions, key)
    detail, models, costs, metas = [], [], [], []
    for spec in args.model:
        name, model, payload, folder = open_model(spec, args, key)
        meta = payload.get("meta") or {}
        metas.append((meta, model.spec.heads))
        labels = scored(y, ds.classes, payload, args.data)
        cells = {(c, m): cell(model, payload.get("source_stats") or {}, x, labels, idx, c, m, protocol, folder / file,
                              args.frost_dir)
                 for c, m, protocol, file in jobs(model, corruptions)}
        src = [cells[c, "source"] for c in corruptions]
        ttt = [cells[c, "ttt"] for c in corruptions if (c, "ttt") in cells]
        for c in corruptions:
            s = cells[c, "source"]
            t = cells.get((c, "ttt"))
            detail.append(f"| {name} | {c} | {s['before']:.1f} ({s['seconds']:.0f} s) | "
                          + (f"{t['after']:.1f} ({t['seconds']:.0f} s) |" if t else "n/a |"))
            print(f"{name}: {c} source {s['before']:.1f}"
                  + (f" ttt-online {t['after']:.1f}" if t else " (no rotation head: no TTT)"), flush=True)
        mean_src = np.mean([s["before"] for s in src])
        if ttt:
            tt = (f"{np.mean([t['after'] for t in ttt]):.1f} | "
                  f"{paired(wrong(src, 'wrong_before'), wrong(ttt, 'wrong_after'))}")
        else:
            tt = "n/a (no rotation head) | n/a"
        probe = next((m["linear_probe"] for m in [meta, *starts(meta)] if m.get("linear_probe")), None)
        cost = sum(c["seconds"] for c in cells.values())
        costs += cells.values()
        clean = cells[CLEAN, "source"]
        labeled = labeled_images(meta)
        lines.append(f"| {name} | {'?' if labeled is None else labeled} | {training_hours(meta)} | {epochs(meta)} | "
                     + (f"{probe['error']:.1f} ({probe.get('train_images', '?')})" if probe else "—")
                     + f" | {clean['before']:.1f} | {card_clean(meta)} | {mean_src:.1f} | {tt} | {cost / 3600:.2f} |")
        models.append((name, labeled, clean, src, ttt))
    lines[2] = lines[2].replace("{threads}", threads_text(costs)).replace("{recipe}", recipe_text(metas))
    lines += comparisons(models)
    lines += ["", "Per corruption: error % and what the cell cost on the CPU.", "",
              "| model | corruption | no adaptation | TTT-Online |", "|---|---|---|---|", *detail]
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
