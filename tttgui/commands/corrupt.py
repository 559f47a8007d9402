"""`tttgui corrupt`: write the CIFAR-10-C release format (<corruption>.npy, severities stacked, labels.npy).

corrupt.json is the contract readers go by (severities, image count, classes, labeled, complete). It is written
first with "complete": false and again with true at the end, so an interrupted run is never taken for a release;
--resume finishes one made from the same data with the same seed, severities and image count.
"""
from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np

from tttgui.atomic import atomic_path, write_text
from tttgui.data.corrupted import LABELS_FILE, META_FILE, SEVERITIES, read_meta
from tttgui.errors import UserError

# must match for --resume to add files, or one folder would mix two releases (the hash last: a named option is
# the clearer message)
RESUME_KEYS = ("images", "image_shape", "severities", "seed", "labeled", "classes", "data_sha256")


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="clean images (e.g. ../shared/data/cifar10/test)")
    p.add_argument("--out", required=True, help="folder to write <corruption>.npy, labels.npy, corrupt.json")
    p.add_argument("--corruptions", help="comma list of corruption names, 'all' (19, default) or 'benchmark' "
                   "(the 15); with --resume the default is the folder's list")
    p.add_argument("--severities", help="comma list from 1..5 (default all five; with --resume the folder's)")
    p.add_argument("--seed", type=int, help="default 0 (with --resume the folder's)")
    p.add_argument("--frost-dir", help="folder with the original frost1.png..frost5.jpg "
                   "(default: the project's generated texture)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--limit", type=int, help="only the first N images (quick runs; with --resume the folder's N)")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted run in --out: only the missing corruption files are computed")
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
    # the temporary name ends in .tmp, not .npy: one a killed run leaves is never listed as a corruption
    with atomic_path(path, keep_suffix=False) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def say(text: str) -> None:
    """print, escaping what the console cannot encode (LANG=C, a path with accents) instead of a traceback."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    print(text.encode(encoding, "backslashreplace").decode(encoding))


def check_out(out: Path) -> None:
    """Refuse an --out that cannot be written, before any image is read or corrupted."""
    from tttgui.commands.checks import output_folder

    output_folder("--out", out, "expected a folder this user can write to (created if missing)")


def existing_release(out: Path, resume: bool) -> dict | None:
    """corrupt.json of the run to finish; None for a new or empty folder. Refuses a folder of other files."""
    if not out.is_dir():
        return None
    meta = read_meta(out)
    if meta is None:
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            raise UserError(f"--out {out} holds files but no {META_FILE} ({', '.join(entries[:3])}"
                            f"{', ...' if len(entries) > 3 else ''}); expected an empty or new folder")
        return None
    if not resume:
        state = "a finished" if meta.get("complete", True) else "an unfinished"
        raise UserError(f"--out {out} already holds {state} release ({META_FILE}); expected --resume to finish it "
                        "with the same data and options, or another --out")
    return meta


def check_resume(old: dict, new: dict, out: Path) -> None:
    expected = f"expected the data and options that made {out}, or another --out"
    for key in RESUME_KEYS:
        if key == "data_sha256" and old.get(key) != new[key]:
            raise UserError(f"--resume: the images or labels of --data differ from those that made {out} "
                            f"(data_sha256 in {META_FILE}); {expected}")
        if old.get(key) != new[key]:
            raise UserError(f"--resume: {key} is {new[key]!r:.80} here but {old.get(key)!r:.80} in "
                            f"{out / META_FILE}; {expected}")
    # frost not written yet is still to be made with the textures corrupt.json names: any difference refuses
    if old.get("frost") and new["frost"] and old["frost"] != new["frost"]:
        raise UserError(f"--resume: frost.npy in {out} uses the {old['frost']}, this run the {new['frost']}; "
                        "expected the same --frost-dir")


def check_done(file: Path, shape: tuple) -> bool:
    """Whether a corruption file is already written (renamed into place whole, so present = finished)."""
    if not file.is_file():
        return False
    try:
        header = np.load(file, mmap_mode="r", allow_pickle=False)
        ok = header.shape == shape and header.dtype == np.uint8
    except Exception:  # truncated or not .npy: not something this command wrote
        ok = False
    if not ok:
        raise UserError(f"--resume: {file} is not a {shape} uint8 array; expected the file this release's "
                        "options make (delete it to recompute it)")
    return True


def label_state(labels: np.ndarray, data) -> bool:
    """True for labeled data; False when no image has a label (a flat folder of images)."""
    if (labels < 0).all():
        return False
    if (labels < 0).any():
        raise UserError(f"data {data} has {int((labels < 0).sum())} images without a label among labeled ones; "
                        "expected every image labeled, or none")
    return True


def data_hash(images: np.ndarray, labels: np.ndarray) -> str:
    """What --resume compares to tell the same data from other data at the same path."""
    digest = hashlib.sha256(np.ascontiguousarray(images))
    digest.update(np.ascontiguousarray(labels, np.int64))
    return digest.hexdigest()


def options(args, old: dict | None) -> tuple:
    """corruptions, severities, seed and limit; with --resume an option not given is the folder's."""
    old = old or {}
    names = args.corruptions if args.corruptions is not None else ",".join(old.get("corruptions", ["all"]))
    severities = args.severities
    if severities is None:
        severities = ",".join(map(str, old.get("severities", SEVERITIES)))
    return (parse_corruptions(names), parse_severities(severities),
            args.seed if args.seed is not None else old.get("seed", 0),
            args.limit if args.limit is not None else old.get("images"))


def run(args) -> int:
    import torch

    import tttgui
    from tttgui.corruptions import corrupt, describe
    from tttgui.corruptions.frost import frost_source, textures
    from tttgui.data import open_dataset
    from tttgui.device import resolve_device
    from tttgui.progress import Progress

    out = Path(args.out)
    check_out(out)
    old = existing_release(out, args.resume)
    names, severities, seed, limit = options(args, old)
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit} is not valid; expected a positive number of images")
    if args.frost_dir and "frost" in names:
        textures(str(args.frost_dir), True)  # fail early (one line) on a bad folder
    device = resolve_device(args.device)

    ds = open_dataset(args.data)
    n = len(ds) if limit is None else min(limit, len(ds))
    # --limit: a seeded spread over the whole set, in its order (the first N of a class-sorted folder are one class)
    picked = np.arange(n) if n == len(ds) else np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])
    images, labels = ds.arrays(picked)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"data {args.data} gave images of shape {images.shape}; expected NxHxWx3 RGB")
    labels = np.asarray(labels, np.int64)
    labeled = label_state(labels, args.data)
    meta = {
        "data": str(Path(args.data).resolve()), "images": n, "image_shape": list(images.shape[1:]),
        "data_sha256": data_hash(images, labels),
        "corruptions": list(names), "severities": list(severities), "labeled": labeled,
        "classes": [str(c) for c in ds.classes], "complete": False,
        "rows": f"rows (k)*N..(k+1)*N hold severity severities[k], N = {n}",
        "subset": None if n == len(ds) else f"{n} of {len(ds)} images drawn at random (seed {seed}), in data order",
        "seed": seed, "device": str(device), "frost": frost_source(args.frost_dir) if "frost" in names else None,
        "versions": {"tttgui": getattr(tttgui, "__version__", "unknown"), "numpy": np.__version__,
                     "torch": torch.__version__, "pillow": __import__("PIL").__version__,
                     "python": platform.python_version()},
    }
    if old:
        check_resume(old, meta, out)
        names = tuple(dict.fromkeys([*old["corruptions"], *names]))
        meta.update(corruptions=list(names), frost=meta["frost"] or old.get("frost"))
    shape = (len(severities) * n,) + images.shape[1:]
    todo = [name for name in names if not check_done(out / f"{name}.npy", shape)]

    write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")   # first: the folder says it is unfinished
    if labeled:  # the release stores labels as uint8 tiled once per severity
        label_dtype = np.uint8 if labels.max(initial=0) < 256 else np.int64
        save_atomic(out / LABELS_FILE, np.tile(labels.astype(label_dtype), len(severities)))
    with Progress(len(todo) * len(severities), "corrupt", enabled=not args.no_progress) as bar:
        for name in todo:
            stack = np.empty(shape, np.uint8)
            for j, s in enumerate(severities):
                stack[j * n:(j + 1) * n] = corrupt(images, name, s, seed=seed, frost_dir=args.frost_dir,
                                                   device=device)
                bar.update(1, postfix=describe(name, s, args.frost_dir))
            save_atomic(out / f"{name}.npy", stack)
    write_text(out / META_FILE, json.dumps({**meta, "complete": True}, indent=2) + "\n")
    kept = f" ({len(names) - len(todo)} were there)" if len(todo) < len(names) else ""
    say(f"wrote {len(todo)} corruption file(s){kept} of {len(severities)} severities x {n} images to {out}")
    return 0
