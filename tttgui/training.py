"""Two-phase training: self-supervised pretraining on unlabeled images, then supervised fine-tuning with the
self-supervised head(s) trained jointly (as TTT requires), optionally followed by stochastic weight averaging
(SWA, Izmailov et al. 2018: the same joint loss at a constant lr, the checkpoint the mean of the epoch-end
weights). Resumable: a state file is written every epoch.
"""
from __future__ import annotations

import math
import platform
import sys
import time
from collections import Counter
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tttgui.atomic import atomic_path
from tttgui.augment import crop_flip, random_rotations, rotate, simclr_views, to_float
from tttgui.device import set_deterministic
from tttgui.errors import UserError, first_line
from tttgui.model_card import stats_provenance, write_model_card
from tttgui.models import ModelSpec, TTTModel, build_model, save_checkpoint
from tttgui.models.checkpoint import load_failure
from tttgui.models.factory import timm_spec, with_heads
from tttgui.probe import extract_features, fit_linear, linear_probe
from tttgui.prototypes import prototype_model
from tttgui.progress import Progress
from tttgui.stats import source_statistics, statistics_sample
from tttgui.train_data import load_images, per_class, stratified_fraction


@dataclass(frozen=True)
class TrainConfig:
    data: str                                # labeled images (phase 2)
    out: str                                 # checkpoint path
    unlabeled: str | None = None             # phase-1 images (labels never read); default: data
    test: str | None = None                  # clean test images for the model card
    label_fraction: float = 1.0
    labels_per_class: int | None = None      # instead of a fraction: N labeled images of every class
    ssl: str = "rotation"                    # phase-1 task(s): rotation, simclr or rotation+simclr
    finetune: str = "joint"                  # phase 2: joint (TTT paper), full (CE only), linear (probe), none
    ssl_lr: float | None = None              # phase-1 lr and batch size (default: --lr, --batch-size)
    ssl_batch_size: int | None = None
    ssl_epochs: int = 2
    epochs: int = 25
    swa_epochs: int = 0                      # phase 3: constant lr, the weights averaged over its epochs (SWA)
    swa_lr: float = 0.01
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    heads: tuple[str, ...] = ("rotation",)
    rotation: str = "random"                 # "random": one rotation per image; "expand": all four (TTT's)
    arch: str = "resnet26"                   # or timm:<name>
    weights: str | None = None               # timm: initial backbone weights (.safetensors / .pth state dict)
    norm: str = "gn"
    temperature: float = 0.5
    seed: int = 0
    device: str = "cpu"
    deterministic: bool = False              # TF32 off, deterministic cuDNN (GPU runs that must repeat exactly)
    precision: str = "fp32"                  # "bf16": autocast convolutions and matmuls (2x faster on AVX-512 CPUs)
    limit: int | None = None                 # use only the first N images of each set (tests)
    stats_images: int = 10000
    cache_dir: str | None = None
    command: str = ""
    progress: bool = True
    spec_overrides: dict = field(default_factory=dict)
    init: str | None = None                  # start from this checkpoint's weights (e.g. a self-supervised one)


def start_from(model: TTTModel, path: str, classes: list[str]) -> str:
    """--init: copy every weight of a checkpoint that this model has with the same shape (heads the checkpoint
    lacks keep their fresh initialisation); the trunk must match. The classifier's rows go by class name: copied
    (reordered) when the checkpoint has a trained linear classifier of the same classes, else fresh (copied by
    position, a folder of the same classes in another order scored 98 % error). Returns what became of it."""
    from tttgui.models import load_checkpoint

    init, payload = load_checkpoint(path, "cpu")
    own, theirs = model.state_dict(), init.state_dict()
    wrong = [k for k in own if k.startswith("trunk.") and (k not in theirs or theirs[k].shape != own[k].shape)]
    if wrong:
        raise UserError(f"--init {path} does not fit this architecture (trunk weight {wrong[0]} missing or of "
                        f"another shape); expected a checkpoint of the same --arch")
    state = {k: v for k, v in theirs.items() if k in own and v.shape == own[k].shape and not k.startswith("fc.")}
    named = list(payload.get("classes") or [])
    if init.spec.classifier != "linear":
        how = "fresh (the checkpoint's classifier is a cosine prototype one)"
    elif (payload.get("meta") or {}).get("finetune") == "none":
        how = "fresh (the checkpoint's classifier was never trained)"
    elif sorted(named) != sorted(classes) or len(set(named)) != len(named):
        how = "fresh (the checkpoint has other classes)"
    else:
        rows = torch.tensor([named.index(c) for c in classes])
        state.update({k: theirs[k][rows] for k in ("fc.weight", "fc.bias") if k in theirs})
        how = "the checkpoint's, row by class name" + (" (reordered)" if named != list(classes) else "")
    model.load_state_dict(state, strict=False)
    return how


def trained_heads(history: list[dict]) -> tuple[str, ...]:
    """The self-supervised heads whose loss some epoch of a run recorded."""
    return tuple(h for h, key in (("rotation", "rot_loss"), ("contrastive", "con_loss"))
                 if any(key in e for e in history))


def init_trained_heads(path: str) -> tuple[str, ...]:
    """The heads a checkpoint holds trained: recorded since checkpoints drop untrained heads; for an older one,
    those its history trained, or all of them when it has no history (weights from elsewhere)."""
    from tttgui.models.checkpoint import read_checkpoint

    payload = read_checkpoint(path)
    meta, heads = payload.get("meta") or {}, tuple(payload["spec"].get("heads", ()))
    if "trained_heads" in meta:
        return tuple(meta["trained_heads"])
    if meta.get("history"):
        return tuple(h for h in trained_heads(meta["history"]) if h in heads)
    return heads


INIT_KEYS = ("command", "config", "history", "train_seconds", "finetune", "linear_probe", "clean_error", "init_record")


def init_record(path: str) -> dict:
    """How an --init checkpoint was trained (its own start's record inside), kept in the state and the new
    checkpoint: its card and docs/ssl.md's costs must not depend on the start file staying as it was."""
    from tttgui.models.checkpoint import read_checkpoint

    meta = read_checkpoint(path).get("meta") or {}
    return {"path": str(path), **{k: meta[k] for k in INIT_KEYS if k in meta}}


def init_summary(record: dict) -> str:
    """How an --init checkpoint was trained, in words, for the card of the model that starts from it."""
    cfg = record.get("config") or {}
    if not cfg:
        return "a checkpoint without a training record"
    n = cfg.get("ssl_epochs")
    ssl = (f"self-supervised by {cfg.get('ssl')} for {n} epoch{'s' * (n != 1)}" if n
           else "no self-supervised phase")
    finetune = record.get("finetune", cfg.get("finetune", "?"))
    phases = Counter(h.get("phase") for h in record.get("history", []))
    if finetune in ("joint", "full") and phases[2]:
        finetune += f" for {phases[2]} epoch{'s' * (phases[2] != 1)}" + (f" + {phases[3]} averaged" if phases[3] else "")
    probe = f", linear-probe error {record['linear_probe']['error']:.2f}%" if record.get("linear_probe") else ""
    err = f", clean error {record['clean_error']:.2f}%" if record.get("clean_error") is not None else ""
    hours = f", {record['train_seconds'] / 3600:.2f} h" if record.get("train_seconds") else ""
    start = f"; it started from `{record['init_record']['path']}`" if record.get("init_record") else ""
    return f"{ssl}, fine-tuning {finetune}{probe}{err}{hours}{start}"


def model_spec(cfg: TrainConfig, num_classes: int, size: int) -> ModelSpec:
    if cfg.init:        # the architecture of the checkpoint it starts from, with a fresh linear classifier
        from tttgui.models.checkpoint import read_checkpoint
        spec = ModelSpec.from_dict(read_checkpoint(cfg.init)["spec"])
        if cfg.arch not in ("resnet26", spec.arch):     # resnet26 is the default, so it says nothing
            raise UserError(f"--arch {cfg.arch} differs from the architecture of --init {cfg.init} ({spec.arch}); "
                            "expected no --arch with --init, or the same")
        heads = tuple(h for h in ("rotation", "contrastive") if h in spec.heads or h in kept_heads(cfg))
        return replace(spec, num_classes=num_classes, heads=heads, classifier="linear")
    if cfg.arch.startswith("timm:"):
        spec = timm_spec(cfg.arch[len("timm:"):], num_classes, kept_heads(cfg), cfg.weights, pretrained=False)
        return replace(spec, input_size=size, **cfg.spec_overrides)   # trained at the data's own size
    return ModelSpec(**{"arch": cfg.arch, "num_classes": num_classes, "heads": kept_heads(cfg),
                        "arch_args": {"depth": 26, "width": 1, "norm": cfg.norm}, "input_size": size,
                        **cfg.spec_overrides})


class Trainer:
    def __init__(self, cfg: TrainConfig, log=print):
        self.cfg, self.log = cfg, log
        self.device = torch.device(cfg.device)
        torch.manual_seed(cfg.seed)
        if cfg.deterministic:
            set_deterministic(cfg.seed)
        if cfg.finetune in ("none", "prototypes") and not cfg.ssl_epochs and not cfg.init:
            raise UserError(f"--finetune {cfg.finetune} with --ssl-epochs 0 and no --init would write a network "
                            "nobody trained; expected --init CHECKPOINT (e.g. the self-supervised model) or "
                            "--ssl-epochs > 0")
        labeled, labels, classes = load_images(cfg.data, cfg.limit, cfg.cache_dir)
        if cfg.finetune != "none" and (len(labels) == 0 or labels.min() < 0 or not classes):
            raise UserError(f"--labeled {cfg.data} has no class labels; expected a folder of <class>/<image> "
                            "(or a labeled release) for fine-tuning")
        limited = f" (--limit {cfg.limit} kept {len(labels)} images)" if cfg.limit else ""
        keep = (per_class(labels, cfg.labels_per_class, cfg.seed, classes, limited) if cfg.labels_per_class
                else stratified_fraction(labels, cfg.label_fraction, cfg.seed))
        if cfg.finetune != "none":      # a class folder without images: the model would list a class never seen
            count = np.bincount(labels, minlength=len(classes))
            empty = [c for c, n in zip(classes, count) if not n]
            if empty and not cfg.limit:
                raise UserError(f"--labeled {cfg.data} has no images of class {', '.join(map(repr, empty[:3]))}; "
                                "expected images in every class folder (or no folder for the class)")
            if empty:       # a quick run's subset: said, not refused
                self.log(f"note: no labeled image of class {', '.join(map(repr, empty[:3]))}{limited}")
        self.x_lab = torch.from_numpy(labeled[keep])
        self.y_lab = torch.from_numpy(labels[keep])
        if cfg.unlabeled and Path(cfg.unlabeled).resolve() != Path(cfg.data).resolve():
            unl, _, unl_classes = load_images(cfg.unlabeled, cfg.limit, cfg.cache_dir)  # labels dropped here
            if unl_classes and classes and set(unl_classes) != set(classes):
                raise UserError(f"--unlabeled {cfg.unlabeled} has classes {sorted(unl_classes)} but --labeled "
                                f"{cfg.data} has {sorted(classes)}; expected the same classes, or unlabeled "
                                "images without class folders")
            if unl.shape[1:] != labeled.shape[1:]:
                raise UserError(f"--unlabeled images are {unl.shape[2]}x{unl.shape[1]} but --labeled ones "
                                f"{labeled.shape[2]}x{labeled.shape[1]}; expected one size")
            self.x_unl = torch.from_numpy(unl)
        else:
            self.x_unl = torch.from_numpy(labeled)
        self.classes = list(classes)
        if cfg.test:
            self.check_test()
        spec = model_spec(cfg, len(classes), labeled.shape[1])
        self.model: TTTModel = build_model(spec).to(self.device)
        # heads that --init brings trained (the others, fresh here, count only once this run trains them)
        self.init_heads = init_trained_heads(cfg.init) if cfg.init else ()
        self.init_classifier = None
        self.init_record = init_record(cfg.init) if cfg.init else None    # a resume keeps the state's
        if cfg.init:
            self.init_classifier = start_from(self.model, cfg.init, self.classes)
            self.log(f"--init {cfg.init}: classifier {self.init_classifier}")
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                                   weight_decay=cfg.weight_decay)
        self.epoch = 0          # epochs finished, over the phases in order (1 ssl, 2 joint, 3 swa)
        self.restarts: list[int] = []   # phase-2 epochs where a resume with a larger --epochs restarted the cosine
        self.changes: list[dict] = []   # options a resume changed: {"after_epoch": n, "changed": {key: [old, new]}}
        self.history: list[dict] = []
        self.swa: dict[str, torch.Tensor] | None = None   # running mean of the phase-3 epoch-end weights
        self.swa_n = 0
        self.probe: dict | None = None   # linear probe of the self-supervised features, at the end of phase 1
        self.wall = 0.0
        self.gen = torch.Generator().manual_seed(cfg.seed)

    # -- schedule: per phase, linear warm-up (1 epoch's worth, capped) then cosine to 0 -----------------------
    def lr_at(self, phase_epochs: int, it: int, iters: int, restart: int | None = None,
              base: float | None = None) -> float:
        base = self.cfg.lr if base is None else base
        total = phase_epochs * iters
        warm = min(iters, total // 10 + 1)
        if it < warm:
            return base * (it + 1) / warm
        lr = 0.5 * base * (1 + math.cos(math.pi * (it - warm) / max(total - warm, 1)))
        # A warm restart ramps up over one epoch too: jumping from ~0 to the cosine's value blew up the
        # shipped model (GroupNorm's scale-invariant weights have shrunk, so the effective step is large).
        if restart is not None and restart * iters <= it < (restart + 1) * iters:
            lr *= (it - restart * iters + 1) / iters
        return lr

    def ssl_loss(self, x: torch.Tensor, stats: dict) -> torch.Tensor:
        loss = x.new_zeros(())
        tasks = ssl_tasks(self.cfg.ssl)
        if "rotation" in tasks:
            xr, r = rotation_batch(x, self.gen, self.cfg.rotation)
            logits = self.model.rotation_logits(xr).float()
            lr = F.cross_entropy(logits, r)
            stats["rot_loss"] = stats.get("rot_loss", 0) + lr.item() * len(x)
            stats["rot_correct"] = stats.get("rot_correct", 0) + (logits.argmax(1) == r).sum().item() * len(x) / len(r)
            loss = loss + lr
        if "simclr" in tasks:
            lc = self.contrastive_loss(x)
            stats["con_loss"] = stats.get("con_loss", 0) + lc.item() * len(x)
            loss = loss + lc
        return loss

    def contrastive_loss(self, x):
        with torch.autocast(x.device.type, enabled=False):   # the views' crop geometry and colours stay float32
            v = torch.cat([simclr_views(x, self.gen), simclr_views(x, self.gen)])
        z = self.model.project(self.model.features(v))
        with torch.autocast(z.device.type, enabled=False):    # the similarity matmul too stays float32
            return nt_xent(z.float(), self.cfg.temperature)

    def run_epoch(self, phase: int, epoch_in_phase: int, phase_epochs: int) -> dict:
        cfg, model = self.cfg, self.model
        model.train()
        data = self.x_unl if phase == 1 else self.x_lab
        n = len(data)
        bs = min(cfg.ssl_batch_size or cfg.batch_size if phase == 1 else cfg.batch_size, n)
        iters = n // bs
        perm = torch.randperm(n, generator=self.gen)
        stats: dict = {"n": 0}
        t0 = time.perf_counter()
        desc = f"{PHASES[phase]} {epoch_in_phase + 1}/{phase_epochs}"
        with Progress(iters, desc, enabled=cfg.progress) as bar:
            for it in range(iters):
                if phase == 3:      # constant, ramped up over its first epoch (the cosine ended near 0)
                    lr = cfg.swa_lr * min(1.0, (epoch_in_phase * iters + it + 1) / iters)
                else:
                    lr = self.lr_at(phase_epochs, epoch_in_phase * iters + it, iters,
                                    self.restarts[-1] if phase == 2 and self.restarts else None,
                                    cfg.ssl_lr if phase == 1 else None)
                for g in self.opt.param_groups:
                    g["lr"] = lr
                idx = perm[it * bs:(it + 1) * bs]
                x = to_float(data[idx]).to(self.device)
                with autocast(self.device, cfg.precision):
                    if phase == 1:
                        loss = self.ssl_loss(x, stats)
                    elif cfg.finetune == "full":
                        loss = self.supervised_loss(x, self.y_lab[idx].to(self.device), stats)
                    else:
                        y = self.y_lab[idx].to(self.device)
                        loss = self.joint_loss(x, y, stats)
                if not torch.isfinite(loss):
                    raise UserError(f"training diverged (loss {loss.item()}) at epoch {self.epoch + 1}; "
                                    "expected a finite loss: lower --lr")
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                stats["n"] += len(x)
                bar.update(1, f"loss {loss.item():.3f}")
        stats["seconds"] = time.perf_counter() - t0
        return {k: (v / stats["n"] if k not in ("n", "seconds") else v) for k, v in stats.items()}

    def supervised_loss(self, x, y, stats):
        """--finetune full: cross-entropy alone, every weight of the classifier path trained."""
        logits = self.model(crop_flip(x, self.gen)).float()
        loss = F.cross_entropy(logits, y)
        stats["cls_loss"] = stats.get("cls_loss", 0) + loss.item() * len(x)
        stats["cls_correct"] = stats.get("cls_correct", 0) + (logits.argmax(1) == y).sum().item()
        return loss

    def joint_loss(self, x, y, stats):
        """CE on the classifier + the self-supervised losses; rotation shares one trunk pass with it."""
        model = self.model
        xa = crop_flip(x, self.gen)
        if "rotation" in model.spec.heads:
            xr, r = rotation_batch(x, self.gen, self.cfg.rotation, xa)
            h = model.shared(torch.cat([xa, xr]))
            logits = model.fc(model.main(h[:len(x)])).float()
            rlog = model.rotation_logits_from_shared(h[len(x):]).float()
            lr = F.cross_entropy(rlog, r)
            stats["rot_loss"] = stats.get("rot_loss", 0) + lr.item() * len(x)
            stats["rot_correct"] = stats.get("rot_correct", 0) + (rlog.argmax(1) == r).sum().item() * len(x) / len(r)
        else:
            logits = model(xa).float()
            lr = logits.new_zeros(())
        lc = F.cross_entropy(logits, y)
        stats["cls_loss"] = stats.get("cls_loss", 0) + lc.item() * len(x)
        stats["cls_correct"] = stats.get("cls_correct", 0) + (logits.argmax(1) == y).sum().item()
        loss = lc + lr
        if "contrastive" in model.spec.heads:
            lcon = self.contrastive_loss(x)
            stats["con_loss"] = stats.get("con_loss", 0) + lcon.item() * len(x)
            loss = loss + lcon
        return loss

    # -- resumable state ------------------------------------------------------------------------------------
    def state_path(self) -> Path:
        return Path(self.cfg.out).with_suffix(".state.pt")

    def save_state(self) -> None:
        with atomic_path(self.state_path()) as tmp:
            torch.save({"model": self.model.state_dict(), "opt": self.opt.state_dict(), "epoch": self.epoch,
                        "history": self.history, "restarts": self.restarts, "changes": self.changes,
                        "wall": self.wall, "swa": self.swa, "swa_n": self.swa_n, "gen": self.gen.get_state(),
                        "probe": self.probe, "init_record": self.init_record,
                        "init_classifier": self.init_classifier, "init_heads": list(self.init_heads),
                        "torch_rng": torch.get_rng_state(), "config": _config_dict(self.cfg)}, tmp)

    def load_state(self) -> bool:
        path = self.state_path()
        if not path.is_file():
            return False
        try:
            st = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise UserError(f"cannot resume: state file {path} {load_failure(path, exc)}; expected the state "
                            "a tttgui train run wrote, or delete it to start afresh") from None
        refuse_other_run(path, st.get("config") or {}, _config_dict(self.cfg), st.get("epoch", 0))
        try:
            self.model.load_state_dict(st["model"])
            self.opt.load_state_dict(st["opt"])
        except Exception as exc:
            raise UserError(f"cannot resume from {path} ({first_line(exc, 100)}); expected a state "
                            "file of the same architecture, or delete it to start afresh") from None
        self.epoch, self.history, self.wall = st["epoch"], list(st["history"]), float(st["wall"])
        self.restarts = [int(r) for r in st.get("restarts", [])]
        self.swa, self.swa_n = st.get("swa"), int(st.get("swa_n", 0))
        if self.swa is not None:    # loaded to the CPU; the running mean is updated with the model's weights
            self.swa = {k: v.to(self.device) for k, v in self.swa.items()}
        self.changes = list(st.get("changes", []))
        self.probe = st.get("probe")
        # what --init was when the run started (the file may since have been replaced, e.g. shipped over)
        self.init_record = st.get("init_record", self.init_record)
        self.init_classifier = st.get("init_classifier", self.init_classifier)
        self.init_heads = tuple(st.get("init_heads", self.init_heads))
        old = st["config"]
        if self.swa_n and old["epochs"] != self.cfg.epochs:
            raise UserError(f"{path} is in the weight-averaging phase after {old['epochs']} joint epochs; "
                            f"expected the same --epochs, not {self.cfg.epochs}")
        if self.swa_n and old.get("swa_lr", self.cfg.swa_lr) != self.cfg.swa_lr:
            raise UserError(f"{path} averages weights taken at --swa-lr {old['swa_lr']}; expected the same "
                            f"--swa-lr, not {self.cfg.swa_lr} (a new lr needs a new average)")
        if self.swa_n > self.cfg.swa_epochs:
            raise UserError(f"{path} has averaged {self.swa_n} SWA epochs already; expected --swa-epochs "
                            f"{self.swa_n} or more, not {self.cfg.swa_epochs}")
        new = _config_dict(self.cfg)
        # a key that older states lack (e.g. precision) had its default then
        defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
        changed = {k: [old.get(k, defaults.get(k)), new[k]] for k in new
                   if (k in old or k in defaults) and k not in UNRECORDED and old.get(k, defaults.get(k)) != new[k]}
        if changed:     # on the card, so a resumed run's schedule can be read back
            self.changes.append({"after_epoch": self.epoch, "changed": changed})
        done = self.epoch - self.cfg.ssl_epochs
        if 0 < done < self.cfg.epochs and st["config"]["epochs"] != self.cfg.epochs and done not in self.restarts:
            self.restarts.append(done)      # a larger --epochs: the cosine restarts from its value here
            self.log(f"--epochs {st['config']['epochs']} -> {self.cfg.epochs}: warm restart of the cosine after "
                     f"joint epoch {done}, its lr ramped up over one epoch")
        self.gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
        return True

    def fit(self, resume: bool = False) -> dict:
        cfg = self.cfg
        if resume and self.load_state():
            self.log(f"resumed from {self.state_path()} after epoch {self.epoch}")
        sizes = ((cfg.ssl_epochs, cfg.epochs, cfg.swa_epochs) if cfg.finetune in ("joint", "full")
                 else (cfg.ssl_epochs, 0, 0))
        total = sum(sizes)
        while self.epoch < total:
            phase, e = 1, self.epoch
            while e >= sizes[phase - 1]:
                e -= sizes[phase - 1]
                phase += 1
            stats = self.run_epoch(phase, e, sizes[phase - 1])
            if phase == 3:
                self.swa_update()
            self.epoch += 1
            self.wall += stats["seconds"]
            stats.update(epoch=self.epoch, phase=phase)
            self.history.append(stats)
            self.log(_epoch_line(stats, total))
            if self.epoch == cfg.ssl_epochs and cfg.ssl_epochs:
                self.probe_ssl()
            self.save_state()
        if cfg.ssl_epochs and self.probe is None:
            if self.epoch == cfg.ssl_epochs:    # the weights are still phase 1's
                self.probe_ssl()
            else:
                self.log("no linear probe: phase 1 ended in a run without --test, and these weights are fine-tuned")
        return self.finish()

    def probe_ssl(self) -> None:
        """Linear-probe error of the self-supervised features (labels used only here), for the model card."""
        if not self.cfg.test or len(self.y_lab) == 0 or self.y_lab.min() < 0:
            return
        xt, yt = self.test_images()
        self.probe = {k: v for k, v in linear_probe(self.model, self.x_lab, self.y_lab, xt, yt,
                                                    self.device).items() if k not in ("weight", "bias")}
        self.probe["test"] = self.cfg.test      # a resume may name another --test: the card says which
        self.log(f"linear probe of the self-supervised features: {self.probe['error']:.2f}% test error")

    def check_test(self) -> None:
        """Before hours of training: --test must name classes the model learns (it is scored by name)."""
        from tttgui.data import open_dataset
        from tttgui.data.labels import class_table, names_text

        ds = open_dataset(self.cfg.test, split="test")
        if not ds.classes:
            raise UserError(f"--test {self.cfg.test} has no class labels; expected a folder of <class>/<image> "
                            "files to measure the clean error on")
        unknown = [str(c) for c, k in zip(ds.classes, class_table(ds.classes, self.classes)) if k < 0]
        if unknown:
            raise UserError(f"--test {self.cfg.test} has class {', '.join(unknown[:3])}, which --labeled "
                            f"{self.cfg.data} does not; expected classes of {names_text(self.classes)}")

    def test_images(self) -> tuple[np.ndarray, np.ndarray]:
        """The --test images that have a label, their labels as the trained classes' indices by name (a test folder
        of other or fewer classes, or another order, is scored by class, never by position)."""
        from tttgui.data.labels import UNLABELED, model_labels

        xt, yt, classes = load_images(self.cfg.test, self.cfg.limit, self.cfg.cache_dir, split="test")
        yt = model_labels(yt, list(classes), list(self.classes), f"--test {self.cfg.test}")
        keep = yt != UNLABELED
        if not keep.any():
            raise UserError(f"--test {self.cfg.test} has no labeled images; expected a folder of <class>/<image> "
                            "files to measure the clean error on")
        return xt[keep], yt[keep]

    @torch.no_grad()
    def swa_update(self) -> None:
        current = self.model.state_dict()
        if self.swa is None:
            self.swa = {k: v.detach().clone() for k, v in current.items()}
        else:
            for k, v in current.items():
                if v.is_floating_point():
                    self.swa[k] += (v - self.swa[k]) / (self.swa_n + 1)
                else:
                    self.swa[k] = v.detach().clone()
        self.swa_n += 1

    def finish(self) -> dict:
        cfg, model = self.cfg, self.model
        model.eval()
        result = {"train_seconds": round(self.wall, 1)}
        xt = yt = None
        if cfg.test:
            xt, yt = self.test_images()
        if cfg.finetune == "prototypes":     # forward passes only: the classifier is the class means
            self.model = model = prototype_model(model, self.x_lab, self.y_lab, self.device)
        if cfg.finetune == "linear":     # the classifier is a probe on the frozen features
            w, b = fit_linear(extract_features(model, self.x_lab, self.device), self.y_lab, len(self.classes))
            with torch.no_grad():
                model.fc.weight.copy_(w)
                model.fc.bias.copy_(b)
        if self.probe is not None:
            result["linear_probe"] = self.probe
        if self.swa_n:
            result["swa"] = {"epochs": self.swa_n, "lr": cfg.swa_lr}
            if xt is not None:   # the last SGD iterate, for comparison on the card
                result["swa"]["last_iterate"] = evaluate_clean(model, xt, yt, self.device)
            model.load_state_dict(self.swa)
            # averaged weights need their own batch statistics: any BatchNorm, whatever --norm said (a timm
            # backbone or an --init architecture brings its own norm layers)
            refresh_batchnorm(model, self.x_lab, cfg.batch_size, self.device,
                              rotated=cfg.finetune == "joint" and "rotation" in model.spec.heads)
            model.eval()
        keep = tuple(h for h in model.spec.heads if h in trained_heads(self.history) or h in self.init_heads)
        if keep != model.spec.heads:    # a random head would give TTT a plausible, meaningless loss
            result["dropped_heads"] = [h for h in model.spec.heads if h not in keep]
            self.log(f"heads never trained, not kept in {cfg.out}: {', '.join(result['dropped_heads'])}")
            self.model = model = with_heads(model, keep)
        result["trained_heads"] = list(keep)
        if cfg.init:
            result["init_record"] = self.init_record
            result["init"] = init_summary(self.init_record) + (f"; classifier {self.init_classifier}"
                                                      if self.init_classifier and cfg.finetune in ("joint", "full")
                                                      else "")
        if xt is not None:
            result.update(evaluate_clean(model, xt, yt, self.device))
            result["test_images"] = len(xt)
            if cfg.finetune == "none":      # the classifier was never trained: no error to state
                result.pop("clean_error")
        result["finetune"] = cfg.finetune
        result["labeled_images"] = len(self.y_lab)
        if cfg.ssl_epochs:
            result["unlabeled_images"] = len(self.x_unl)
        k = min(cfg.stats_images, len(self.x_unl))
        stats = source_statistics(model, statistics_sample(self.x_unl, k, cfg.seed), self.device)
        meta = {"command": cfg.command, "config": _config_dict(cfg), "history": self.history,
                "restarts": self.restarts, "changes": self.changes,
                "source_stats": stats_provenance(cfg.unlabeled or cfg.data, k, cfg.seed),
                "torch": str(torch.__version__), "python": platform.python_version(), **result}
        save_checkpoint(cfg.out, model, self.classes, stats, meta)
        write_model_card(Path(cfg.out).with_suffix(".md"), cfg, meta, model)
        return meta


@torch.no_grad()
def refresh_batchnorm(model: TTTModel, images: torch.Tensor, batch: int, device, rotated: bool = True) -> None:
    """Recompute every BatchNorm's running statistics as the plain mean over the training images (both
    branches when `rotated`, as joint training sees them: the classifier on upright images, the rotation head on
    rotated ones; upright only after `full` fine-tuning, which never showed the trunk a rotated image)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:         # GroupNorm models: nothing to refresh
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None        # cumulative average
    model.train()
    for i in range(0, len(images), batch):
        x = to_float(images[i:i + batch]).to(device)
        model(x)
        if rotated and model.rot_fc is not None:
            model.rotation_logits(rotate(x, torch.arange(len(x), device=device) % 4))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


SSL_TASKS = ("rotation", "simclr")
ROTATION = {"random": "one random rotation of a crop+flip of each image per step",
            "expand": "all four rotations of each crop+flip image per step (the TTT code's --rotation_type expand)"}


def rotation_batch(x, gen, mode: str, views=None):
    """(rotated views, labels). "random": a random rotation of a new crop+flip of each image; "expand": all four
    rotations of `views` (the classifier's crop+flip images; drawn when None), as TTT's rotate_batch 'expand'."""
    if mode == "random":
        r = random_rotations(len(x), gen, x.device)
        return rotate(crop_flip(x, gen), r), r
    if mode != "expand":
        raise UserError(f"rotation {mode!r} is unknown; expected one of {', '.join(ROTATION)}")
    v = crop_flip(x, gen) if views is None else views
    r = torch.arange(4, device=x.device).repeat_interleave(len(v))
    return rotate(v.repeat(4, 1, 1, 1), r), r
FINETUNE = ("joint", "full", "linear", "prototypes", "none")
PRECISION = {"fp32": "float32",
             "bf16": "bf16 autocast (convolutions and matmuls in bfloat16; weights, optimizer and losses float32)"}


def autocast(device: torch.device, precision: str):
    """The training step's numeric precision; fp32 is plain float32 (no autocast at all)."""
    if precision not in PRECISION:
        raise UserError(f"precision {precision!r} is unknown; expected one of {', '.join(PRECISION)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        # torch would fall back to float32 with a warning, and the card would claim bf16
        raise UserError(f"{device} has no bfloat16 support; expected --precision fp32 on this GPU")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def ssl_tasks(name: str) -> tuple[str, ...]:
    """'rotation+simclr' -> ('rotation', 'simclr'); raises a one-line error for an unknown task."""
    tasks = tuple(t.strip() for t in name.split("+") if t.strip())
    bad = [t for t in tasks if t not in SSL_TASKS]
    if bad or not tasks:
        raise UserError(f"--ssl {name!r} is not a known self-supervised task; expected rotation, simclr or "
                        "rotation+simclr")
    return tasks


def kept_heads(cfg: TrainConfig) -> tuple[str, ...]:
    """The checkpoint keeps every head it was trained with: --heads plus those of the --ssl tasks."""
    heads = list(cfg.heads)
    for task, head in (("rotation", "rotation"), ("simclr", "contrastive")):
        if cfg.ssl_epochs and task in ssl_tasks(cfg.ssl) and head not in heads:
            heads.append(head)
    return tuple(h for h in ("rotation", "contrastive") if h in heads)


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent over 2N L2-normalised projections where rows i and i+N are positives."""
    n = len(z) // 2
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


@torch.no_grad()
def evaluate_clean(model: TTTModel, images: np.ndarray, labels: np.ndarray, device, batch: int = 500) -> dict:
    """Clean error (%) and rotation accuracy (%, all 4 rotations of every image) in eval mode."""
    model.eval()
    wrong = rot_ok = 0
    for i in range(0, len(images), batch):
        x = to_float(torch.from_numpy(images[i:i + batch])).to(device)
        y = torch.from_numpy(labels[i:i + batch]).to(device)
        wrong += (model(x).argmax(1) != y).sum().item()
        if model.rot_fc is not None:
            for k in range(4):
                r = torch.full((len(x),), k, device=device)
                rot_ok += (model.rotation_logits(rotate(x, r)).argmax(1) == r).sum().item()
    out = {"clean_error": round(100.0 * wrong / len(images), 2)}
    if model.rot_fc is not None:
        out["rotation_accuracy"] = round(100.0 * rot_ok / (4 * len(images)), 2)
    return out


def _epoch_line(s: dict, total: int) -> str:
    parts = [f"epoch {s['epoch']}/{total} ({PHASES[s['phase']]})"]
    for key, name in (("cls_loss", "ce"), ("cls_correct", "train acc"), ("rot_loss", "rot loss"),
                      ("rot_correct", "rot acc"), ("con_loss", "contrastive")):
        if key in s:
            v = s[key] * (100 if key.endswith("correct") else 1)
            parts.append(f"{name} {v:.3f}" if not key.endswith("correct") else f"{name} {v:.1f}%")
    parts.append(f"{s['seconds']:.0f}s")
    return " | ".join(parts)


PHASES = {1: "pretrain", 2: "finetune", 3: "swa"}
# options that do not change what is trained, left out of the record of what a resume changed
# Options that say which data and which network a run trains: a resume that changes one would continue another
# run's weights on other images (or another label draw) and the card would claim the new ones. Paths compare
# resolved; the option names are the command line's.
SAME_ON_RESUME = {"data": "--labeled", "unlabeled": "--unlabeled", "label_fraction": "--label-fraction",
                  "labels_per_class": "--labels-per-class", "seed": "--seed", "limit": "--limit", "arch": "--arch",
                  "norm": "--norm", "init": "--init", "weights": "--weights", "ssl": "--ssl"}


def refuse_other_run(path, old: dict, new: dict, epoch: int) -> None:
    """Raise UserError when the state at `path` (after `epoch`) is of a run on other data or another network, or
    when fine-tuning has started and the self-supervised phase would be given another length."""
    def same(key):
        a, b = old.get(key), new.get(key)
        if key in ("data", "unlabeled", "init", "weights") and a and b:
            return Path(a).resolve() == Path(b).resolve() or a == b
        return a == b
    for key, flag in SAME_ON_RESUME.items():
        if key in old and not same(key):
            raise UserError(f"cannot resume from {path}: it was trained with {flag} {old[key]}, not {new[key]}; "
                            f"expected the same {flag} (another value is another run: another --out, or delete "
                            "the state to start afresh)")
    if "ssl_epochs" not in old:
        return
    if epoch > old["ssl_epochs"] and new["ssl_epochs"] != old["ssl_epochs"]:
        raise UserError(f"cannot resume from {path}: fine-tuning began after {old['ssl_epochs']} self-supervised "
                        f"epochs; expected --ssl-epochs {old['ssl_epochs']}, not {new['ssl_epochs']}")
    if min(epoch, old["ssl_epochs"]) > new["ssl_epochs"]:     # done epochs would be counted as fine-tuning
        raise UserError(f"cannot resume from {path}: it has {epoch} self-supervised epochs done; expected "
                        f"--ssl-epochs {epoch} or more, not {new['ssl_epochs']}")
    began = old.get("finetune", "joint")     # states predating --finetune were joint
    if epoch > old["ssl_epochs"] and began != new["finetune"]:
        raise UserError(f"cannot resume from {path}: its fine-tuning began as {began}; expected --finetune {began}, "
                        f"not {new['finetune']}")
    tuned = max(0, min(epoch - old["ssl_epochs"], old.get("epochs", 0)))
    if tuned > new["epochs"]:   # they ran: a card saying fewer, or averaging over some of them, would be false
        raise UserError(f"cannot resume from {path}: it has {tuned} fine-tuning epochs done; expected --epochs "
                        f"{tuned} or more, not {new['epochs']}")


UNRECORDED = {"command", "progress", "cache_dir", "out", "device", "test", "stats_images"}


def _config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["heads"] = list(cfg.heads)
    return d


def train(cfg: TrainConfig, resume: bool = False, log=print) -> dict:
    return Trainer(cfg, log).fit(resume)


__all__ = ["TrainConfig", "Trainer", "train", "evaluate_clean", "nt_xent", "load_images", "per_class",
           "stratified_fraction", "replace", "sys"]
