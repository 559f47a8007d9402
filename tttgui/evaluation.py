"""The headless evaluation engine behind `tttgui eval` and the window's batch evaluation: error without and with
test-time adaptation, per corruption, severity and method, with one row per image (tttgui.results).

Results are always last-iterate (no label ever selects a step). The work is a list of cells (one corruption ×
severity × method each, tttgui.cell); the online stream is one seeded shuffle of the images (the paper shuffles
it; a class-sorted folder would be non-i.i.d.).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from tttgui import protocols, vectorized
from tttgui.augment import to_float
from tttgui.cell import Cell, predict_all, run_episodic, run_online
from tttgui.errors import UserError
from tttgui.methods import Adapter, MethodConfig, get_method
from tttgui.methods.base import EVAL_PROTOCOLS
from tttgui.results import CLEAN, ImageRow, SummaryRow, run_info, summarise, write_outputs


@dataclass(frozen=True)
class EvalConfig:
    corruptions: tuple[str, ...] = (CLEAN,)
    severities: tuple[int, ...] = (5,)
    methods: tuple[str, ...] = ("source", "ttt")
    settings: MethodConfig = MethodConfig()   # steps, lr, ...: None = each method's paper default; its method unused
    batch_size: int | None = None     # images per update (None: the protocol's, tttgui.protocols.batch_size)
    epochs: int | None = None         # offline: epochs per cell (None: the original's)
    frost_dir: str | None = None
    chunk: int | None = None          # episodic: images adapted at once (None: per device; 1: sequential loop)
    memory_budget: int | None = None  # bytes a vectorised chunk may use (None: half the free memory); no effect
                                      # on results, so not part of the run's record or resume fingerprint
    diagnose: bool = False            # episodic: per labelled image, the TTT paper's gradient cosine and loss
                                      # decrease (tttgui.results.ImageRow); sequential, so slower

    @property
    def protocol(self) -> str:
        return self.settings.protocol

    @property
    def seed(self) -> int:
        return self.settings.seed

    def method_config(self, method: str) -> MethodConfig:
        return replace(self.settings, method=method)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("memory_budget")
        if not d["diagnose"]:   # runs from before the option keep their resume fingerprint
            d.pop("diagnose")
        d["settings"].pop("method")
        return protocols.record(self, {**{k: list(v) if isinstance(v, tuple) else v for k, v in d.items()
                                          if k != "settings"}, **d["settings"]})


@dataclass
class EvalResult:
    summary: list[SummaryRow] = field(default_factory=list)
    images: list[ImageRow] = field(default_factory=list)
    recipes: dict = field(default_factory=dict)
    cancelled: bool = False
    seconds: float = 0.0


def check_config(cfg: EvalConfig, model, release: bool = False, images: int | None = None) -> None:
    """Validate everything before any work starts, so a typo fails in one line and not after an hour. A release
    (already corrupted images) names its corruptions by its files, which its reader checks. With `images` (per
    cell), also the batches each method will get."""
    if cfg.protocol not in EVAL_PROTOCOLS:
        raise UserError(f"unknown protocol {cfg.protocol!r}; expected one of {', '.join(EVAL_PROTOCOLS)}")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise UserError(f"batch size {cfg.batch_size} is invalid; expected 1 or more")
    if cfg.chunk is not None and cfg.chunk < 1:
        raise UserError(f"chunk {cfg.chunk} is invalid; expected 1 (sequential) or more images at once")
    if cfg.diagnose and cfg.protocol != "episodic":
        raise UserError(f"the gradient diagnostic is recorded per image in the episodic protocol; expected "
                        f"--protocol episodic, not {cfg.protocol}")
    if not cfg.methods:
        raise UserError("no methods given; expected a comma list such as source,ttt")
    for s in cfg.severities:
        if not 1 <= int(s) <= 5:
            raise UserError(f"severity {s} is out of range; expected integers 1 to 5")
    for m in cfg.methods:
        cls = get_method(m)
        recipe = cls.resolve(cfg.method_config(cls.name))
        why = cls.unusable(model) or (images and batch_refusal(cfg, cls, model, recipe, images))
        if why:
            raise UserError(why)
    if not release and any(c != CLEAN for c in cfg.corruptions):
        names = corruption_names()
        bad = [c for c in cfg.corruptions if c != CLEAN and c not in names]
        if bad:
            raise UserError(f"unknown corruption(s) {', '.join(bad)}; expected none, all or names from: "
                            f"{', '.join(names)}")
    protocols.check(cfg, [get_method(m) for m in cfg.methods])


def batch_refusal(cfg: EvalConfig, cls, model, recipe, images: int) -> str | None:
    """Why cells of `images` images cannot run method `cls` on `model`: a BatchNorm layer normalising with the
    batch would get 1 value per channel (a 1x1 map, and a batch or view of one image); None if they can."""
    found = cls.single_value_use(model, recipe, protocols.smallest_batch(cfg, cls, images))
    if not found:
        return None
    use, layer = found
    size = protocols.batch_size(cfg, cls)
    if cfg.protocol == "episodic":
        where, fix = (("an episodic update has 1 view", "--views 2 or more") if use == "update" else
                      ("the episodic protocol predicts 1 image at a time", "--protocol online with --batch-size 2 "
                       "or more"))
    elif size == 1:
        where, fix = "--batch-size 1 gives it 1 image at a time", "--batch-size 2 or more"
    else:
        where = f"{images} images in batches of {size} leave a last batch of 1"
        fix = "a --batch-size that leaves no batch of 1 image"
    return (f"{cls.name} normalises with the batch's own BatchNorm statistics and {where}, so layer {layer} gets 1 "
            f"value per channel; expected {fix}, or a model whose BatchNorm layers see more than one value per "
            "channel")


def refusal(cfg: EvalConfig, name: str, model, images: int, source_stats: dict | None = None) -> str | None:
    """Why `--methods all` leaves method `name` out of this run (no recipe for the protocol, a head the model
    lacks, source statistics the checkpoint lacks, batches it cannot take); None if it runs. The protocol's reason names no method, so aws and aws-mean
    share it."""
    cls = get_method(name)
    if cfg.protocol not in cls.protocols:
        why = ": they learn from the pairs of a batch" if cls.min_batch > 1 else ""
        *rest, last = cls.protocols
        return f"no {cfg.protocol} recipe{why}; expected --protocol {', '.join(rest)} or {last}"
    return (cls.unusable(model) or cls.missing_stats(model, source_stats or {})
            or batch_refusal(cfg, cls, model, cls.resolve(cfg.method_config(name)), images))


def check_labels(labels, model) -> None:
    """Labels must index the model's classes (-1: no label); data labels are mapped by class name first
    (tttgui.data.labels), so anything else here would score every image as wrong."""
    n = model.spec.num_classes
    bad = [int(k) for k in np.asarray(labels).reshape(-1) if not -1 <= k < n]
    if bad:
        raise UserError(f"label {bad[0]} is outside the model's {n} classes; expected 0..{n - 1}, or -1 for an "
                        "image without a label")


def corruption_names() -> list[str]:
    try:
        from tttgui.corruptions import CORRUPTIONS
    except ImportError:
        raise UserError("corruptions are not available in this build; expected --corruptions none") from None
    return list(CORRUPTIONS)


def benchmark_corruptions() -> list[str]:
    try:
        from tttgui.corruptions import BENCHMARK_CORRUPTIONS
    except ImportError:
        raise UserError("corruptions are not available in this build; expected --corruptions none") from None
    return list(BENCHMARK_CORRUPTIONS)


def shifts(cfg: EvalConfig) -> list[tuple[str, int]]:
    out = []
    for c in cfg.corruptions:
        if c == CLEAN:
            out.append((CLEAN, 0))
        else:
            out += [(c, int(s)) for s in cfg.severities]
    return out


def evaluate(model, source_stats: dict, images: np.ndarray | None, labels: np.ndarray, indices: np.ndarray,
             cfg: EvalConfig, device, progress: Callable[[int, str], None] | None = None,
             should_stop: Callable[[], bool] = lambda: False, *, shifted: Callable | None = None,
             store=None) -> EvalResult:
    """images: uint8 N×H×W×3 (clean), labels (model classes, -1: none) and data-set indices of length N.
    shifted(corruption, severity) -> uint8 N×H×W×3 gives already corrupted images instead (a corruption
    release; images may then be None). store (tttgui.store.CellStore) keeps finished cells: they are read back,
    not recomputed, and each new one is saved as it finishes. progress(k, text) after every k images;
    should_stop() is checked between images (the result is then partial and `cancelled`)."""
    device = torch.device(device)
    check_config(cfg, model, release=shifted is not None, images=len(labels))
    check_labels(labels, model)
    model = model.to(device).eval()
    result = EvalResult()
    t0 = time.perf_counter()
    adapters = {}
    for m in cfg.methods:
        ad = Adapter(model, source_stats, cfg.method_config(m), device)
        adapters[ad.recipe.method] = ad
        result.recipes[ad.recipe.method] = protocols.recipe_record(cfg, type(ad.method), ad.recipe.to_dict())
    order = stream_order(cfg, len(labels))

    def images_of(corruption, severity):   # float images of a shift and the source model's predictions
        x = to_float(torch.from_numpy(np.ascontiguousarray(
            shift_images(images, corruption, severity, cfg, device, shifted))))
        return x, predict_all(model, x, device)
    if cfg.protocol == "continual":   # one stream per method across the corruptions
        try:
            protocols.run_continual(adapters, images_of, labels, indices, order, cfg, device, result, progress,
                                    should_stop, store)
        finally:
            result.seconds = time.perf_counter() - t0
        return result
    chunk = cfg.chunk if cfg.chunk is not None else vectorized.auto_chunk(device)
    try:
        for corruption, severity in shifts(cfg):
            keys = [(corruption, severity, name) for name in adapters]
            stored = {k: store.load(k) if store is not None else None for k in keys}
            before = x_all = None
            for key, ad in zip(keys, adapters.values()):
                rows = stored[key]
                # this process's part of the cell: all of it, or a rank's (tttgui.distributed)
                share = order if rows is not None or store is None else store.share(key, order)
                if rows is None and not len(share):   # another rank's cell
                    rows = []
                if rows is None:
                    if x_all is None:   # corrupt once per shift, and only when a cell of it is left to run
                        x_all, before = images_of(corruption, severity)
                    cell = Cell(ad, x_all, labels, indices, share, before, corruption, severity, cfg.seed,
                                protocols.batch_size(cfg, type(ad.method)), chunk, device, progress, should_stop,
                                epochs=protocols.epochs(cfg), memory_budget=cfg.memory_budget,
                                diagnose=cfg.diagnose)
                    rows = runner(cell)(cell)
                    ad.reset()
                    if store is not None and len(rows) == len(share):   # only whole cells (or parts) are kept
                        store.save(key, rows)
                elif progress:
                    progress(len(rows), f"{corruption}-{severity} {key[2]} (done before)")
                result.images += rows
                if rows:
                    result.summary.append(summarise(rows))
                if should_stop():
                    result.cancelled = True
                    return result
    finally:
        for ad in adapters.values():   # the caller's model leaves as it came
            ad.reset()
        result.seconds = time.perf_counter() - t0
    return result


def runner(cell: Cell):
    if cell.adapter.recipe.protocol == "offline":
        return protocols.run_offline
    if cell.adapter.recipe.protocol == "online":
        return run_online
    return vectorized.run_episodic if vectorized.applies(cell) else run_episodic


def stream_order(cfg: EvalConfig, n: int) -> np.ndarray:
    if cfg.protocol in ("online", "continual"):   # the paper shuffles the stream; a class-sorted folder would be non-i.i.d.
        return np.random.default_rng(cfg.seed).permutation(n)
    return np.arange(n)


def shift_images(images, corruption, severity, cfg, device, shifted=None) -> np.ndarray:
    if shifted is not None:
        return shifted(corruption, severity)
    return images if corruption == CLEAN else corrupt_images(images, corruption, severity, cfg, device)


def corrupt_images(images, corruption, severity, cfg, device):
    from tttgui.corruptions import corrupt

    return corrupt(images, corruption, severity, seed=cfg.seed, frost_dir=cfg.frost_dir, device=device)


def run_record(result: EvalResult, cfg: EvalConfig, command: str, **extra) -> dict:
    """run.json of an evaluation, the same for `tttgui eval` and the window's batch evaluation."""
    return run_info(command, cfg.to_dict(), recipes=result.recipes, cancelled=result.cancelled,
                    seconds=round(result.seconds, 3), **extra)


def write_result(out_dir, result: EvalResult, info: dict):
    """summary.csv, images.csv and run.json of an evaluation (tttgui.results.write_outputs)."""
    return write_outputs(out_dir, result.summary, result.images, info)


def recipes(cfg: EvalConfig) -> dict:
    return {get_method(m).name: protocols.recipe_record(cfg, get_method(m), get_method(m).resolve(
        cfg.method_config(get_method(m).name)).to_dict()) for m in cfg.methods}


def collect(store, cfg: EvalConfig) -> EvalResult:
    """The finished cells of a store, in run order (what an interrupted run leaves)."""
    result = EvalResult(recipes=recipes(cfg), cancelled=True)
    for corruption, severity in shifts(cfg):
        for m in cfg.methods:
            rows = store.load((corruption, severity, get_method(m).name))
            if rows:
                result.images += rows
                result.summary.append(summarise(rows))
    return result
