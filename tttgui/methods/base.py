"""What every adaptation method is: a recipe (defaults per protocol), a parameter selection, a view sampler and a
loss. Methods hold no optimizer and never step themselves: `tttgui.methods.adapter.Adapter` (and the vectorised
episodic path built on it) owns the update, so a method stays a pure `loss(model, batch)` over drawn views.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn

from tttgui.errors import UserError

PROTOCOLS = ("episodic", "online")   # the window's: one image, or a stream
# tttgui eval's too; offline (TTT++'s epochs) and continual (one stream over the corruptions) run the online recipe
EVAL_PROTOCOLS = PROTOCOLS + ("offline", "continual")
PARAM_CHOICES = ("default", "all", "trunk", "norm")
OPTIMIZERS = ("sgd", "adam", "adamw")
NORM_TYPES = (nn.GroupNorm, nn.LayerNorm, nn.modules.batchnorm._NormBase)


@dataclass(frozen=True)
class MethodConfig:
    """What a user picks; None means the paper default of the method for the protocol."""

    method: str = "ttt"
    steps: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    views: int | None = None
    params: str | None = None          # "default" | "all" | "trunk" | "norm"
    protocol: str = "episodic"         # "episodic" (reset before every image) | "online" (carry state)
    seed: int = 0


@dataclass(frozen=True)
class Recipe:
    """A fully resolved configuration: what actually runs (written to run.json and the GUI's export)."""

    method: str
    protocol: str
    steps: int
    lr: float
    optimizer: str
    momentum: float
    weight_decay: float
    nesterov: bool
    views: int                        # augmented samples per update, at least one per image of the batch
    params: str                       # the resolved choice; "default" stays "default" (= the method's own set)
    param_set: str                    # words for the parameters that adapt, e.g. "trunk + rotation head"
    seed: int
    outputs: str = "after"            # predictions from after the update, or "before" it (Tent's outputs)

    def to_dict(self) -> dict:
        return asdict(self)


class Method:
    """Base class. Subclasses set the class attributes and implement `draw` and `loss`."""

    name = ""
    label = ""          # the name a user reads, when it is more than the registry name in other letters
    summary = ""
    source = ""                        # where the defaults come from
    requires: tuple[str, ...] = ()     # model heads the loss needs
    adapts = True
    # defaults per protocol: dict with steps, lr, optimizer, momentum, weight_decay, nesterov, views
    episodic: dict = {}
    online: dict = {}
    default_params = "all"             # "all" | "trunk" | "norm" | "trunk+rotation" | "encoder"
    default_param_words = "all parameters"
    carried_outputs = "after"          # with carried weights (online): predict after or "before" the update
    protocols = EVAL_PROTOCOLS         # the protocols it has a recipe for
    batch_size: int | None = None      # its paper's stream batch: online and offline default (None: 1 online)
    other_optimizers: dict = {}        # {optimizer: settings} the original code gives another optimizer
    min_batch = 1                      # fewer images per update make it another method (aws: in-batch pairs)
    lr_per_batch = False               # its default lr is for `batch_size` images (lr = base x batch / 64)
    batch_stats_predict = False        # predicts with the batch's own BatchNorm statistics (Tent)

    def __init__(self, model, source_stats: dict, recipe: Recipe, device: torch.device):
        self.model, self.stats, self.recipe, self.device = model, source_stats or {}, recipe, device
        why = self.unusable(model)
        if why:
            raise UserError(why)

    @classmethod
    def unusable(cls, model) -> str | None:
        """Why this method cannot run on `model` (a head its loss needs is missing), else None."""
        missing = [h for h in cls.requires if h not in model.spec.heads]
        if missing:
            return (f"method {cls.name} needs a model with the {', '.join(missing)} head; this checkpoint has heads "
                    f"{list(model.spec.heads) or 'none'}")
        return None

    @classmethod
    def missing_stats(cls, model, source_stats: dict) -> str | None:
        """Why the checkpoint's source statistics cannot serve this method (one line), or None."""
        return None

    @classmethod
    def batchnorm_scope(cls, model) -> list[tuple[str, nn.Module]]:
        """(name, module) pairs whose BatchNorm layers normalise with the batch during the loss (train_mode)."""
        return []

    @classmethod
    def single_value_use(cls, model, recipe: Recipe, images: int) -> tuple[str, str] | None:
        """(use, layer): the first use of `images` images at once, "update" or "prediction", in which a BatchNorm
        layer normalising with the batch would get 1 value per channel (torch refuses it); else None."""
        views = max(1, -(-recipe.views // images)) * images   # view_count
        uses = [use for use, alone in (("update", cls.adapts and recipe.steps > 0 and views == 1),
                                       ("prediction", cls.batch_stats_predict and images == 1)) if alone]
        layer = single_value_layer(model, cls.batchnorm_scope(model)) if uses else None
        return (uses[0], layer) if layer else None

    # -- recipe ---------------------------------------------------------------------------------------------
    @classmethod
    def defaults(cls, protocol: str) -> dict:
        if protocol not in EVAL_PROTOCOLS:
            raise UserError(f"unknown protocol {protocol!r}; expected one of {', '.join(EVAL_PROTOCOLS)}")
        return dict(cls.episodic if protocol == "episodic" else cls.online)

    @classmethod
    def resolve(cls, config: MethodConfig) -> Recipe:
        d = cls.defaults(config.protocol)
        steps = d["steps"] if config.steps is None else int(config.steps)
        opt = d["optimizer"] if config.optimizer is None else config.optimizer.lower()
        if opt != d["optimizer"] and opt in cls.other_optimizers:   # the original's settings for that optimizer
            d = {**d, **cls.other_optimizers[opt], "optimizer": opt}
        lr = d["lr"] if config.lr is None else float(config.lr)
        views = d["views"] if config.views is None else int(config.views)
        params = "default" if config.params is None else config.params
        if steps < 0:
            raise UserError(f"steps {steps} is negative; expected 0 or more")
        if not (lr >= 0 and math.isfinite(lr)):
            raise UserError(f"learning rate {lr} is invalid; expected a finite number >= 0")
        if opt not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {opt!r}; expected one of {', '.join(OPTIMIZERS)}")
        if views < 1:
            raise UserError(f"views {views} is invalid; expected 1 or more")
        if params not in PARAM_CHOICES:
            raise UserError(f"unknown parameter set {params!r}; expected one of {', '.join(PARAM_CHOICES)}")
        same_opt = opt == d["optimizer"]   # momentum etc. belong to the paper's optimizer; another one runs plain
        words = {"default": cls.default_param_words, "all": "all parameters", "trunk": "shared trunk",
                 "norm": "norm-layer affine parameters"}[params]
        return Recipe(method=cls.name, protocol=config.protocol, steps=steps, lr=lr, optimizer=opt,
                      momentum=d.get("momentum", 0.0) if same_opt else 0.0,
                      weight_decay=d.get("weight_decay", 0.0) if same_opt else (0.01 if opt == "adamw" else 0.0),
                      nesterov=d.get("nesterov", False) if same_opt else False,
                      views=views, params=params, param_set=words, seed=int(config.seed),
                      # offline predicts in a final pass after every epoch, so from after the updates
                      outputs="after" if config.protocol in ("episodic", "offline") else cls.carried_outputs)

    @classmethod
    def display_name(cls, model=None) -> str:
        """The name a user reads (GUI, tables); a method may name what it becomes on this model."""
        return cls.label or cls.name

    # -- parameters -----------------------------------------------------------------------------------------
    def parameters(self) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) pairs this method adapts, in model order."""
        choice = self.default_params if self.recipe.params == "default" else self.recipe.params
        return select_parameters(self.model, choice)

    # -- views and loss -------------------------------------------------------------------------------------
    def draw(self, images: torch.Tensor, gen: torch.Generator) -> dict:
        """Random inputs of one update from float NCHW images (all randomness lives here, none in `loss`)."""
        raise NotImplementedError

    def loss(self, model, batch: dict) -> torch.Tensor:
        """The self-supervised loss of `model` on a drawn batch (a scalar)."""
        raise NotImplementedError

    def display_views(self, batch: dict) -> torch.Tensor:
        """The images of a drawn batch to show a user (float NCHW in [0, 1])."""
        return batch["views"]

    def commit(self) -> None:
        """Called after a successful update (online state such as TTT++'s queue is advanced here)."""

    def reset_state(self) -> None:
        """Forget carried state (called with every model reset)."""

    @contextmanager
    def train_mode(self, model):
        """Module modes during the loss; the default keeps eval mode (GroupNorm does not care)."""
        yield

    def begin_epoch(self, epoch: int, forward_only: int) -> None:
        """Offline protocol: epoch (1-based) starts; the first `forward_only` take no step."""

    @contextmanager
    def predict_mode(self, model):
        """Module modes when predicting; the default keeps eval mode."""
        yield

    def view_count(self, n_images: int) -> int:
        """Views per update: `views` rounded up to a multiple of the batch, so every image gets the same number."""
        per = max(1, -(-self.recipe.views // n_images))
        return per * n_images


def norm_kind(model) -> str:
    """The model's normalisation as a table names it: BN, GN or LN (BatchNorm wins: Tent's defining case)."""
    mods = list(model.modules())
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in mods):
        return "BN"
    if any(isinstance(m, nn.GroupNorm) for m in mods):
        return "GN"
    return "LN" if any(isinstance(m, nn.LayerNorm) for m in mods) else "no norm"


def view_index(n_images: int, total: int, device) -> torch.Tensor:
    """View j comes from image j % n: views are laid out as (per_image, n_images)."""
    return torch.arange(total, device=device) % n_images


def select_parameters(model, choice: str) -> list[tuple[str, nn.Parameter]]:
    named = list(model.named_parameters())
    if choice == "all":
        keep = {id(p) for _, p in named}
    elif choice == "norm":
        keep = {id(p) for m in model.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)}
    else:
        groups = model.parameter_groups()
        parts = {"trunk": ["trunk"], "trunk+rotation": ["trunk", "rotation"],
                 "encoder": ["trunk", "encoder"]}[choice]
        keep = set()
        for part in parts:
            if part == "encoder":   # the main branch up to the pooled features, not the linear classifier
                keep |= {id(p) for p in model.main.parameters()}
            else:
                keep |= {id(p) for p in groups.get(part, [])}
    out = [(n, p) for n, p in named if id(p) in keep]
    if not out:
        raise UserError(f"parameter set {choice!r} selects no parameters of this model; expected 'all' or "
                        "a set the architecture has")
    return out


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of softmax(logits), per row."""
    logp = logits.log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def _bn_named(named_modules) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in named_modules if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def one_value_per_channel(x: torch.Tensor) -> bool:
    """A BatchNorm input with one value per channel (one image, a 1x1 map or a flat input): no batch statistics."""
    return x.numel() <= x.shape[1]


def single_value_layer(model, named_modules) -> str | None:
    """The first BatchNorm layer among `named_modules` that gets 1 value per channel from one image (a 1x1 map or
    a flat input), by an eval-mode forward of one blank image at the model's input size; None if none does."""
    names = {m: n for n, m in _bn_named(named_modules)}
    if not names:
        return None
    found = []

    def hook(m, inputs):
        if not found and one_value_per_channel(inputs[0]):
            found.append(names[m])

    modes = [(m, m.training) for m in model.modules()]
    handles = [m.register_forward_pre_hook(hook) for m in names]
    p = next(model.parameters())
    size = model.spec.input_size
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=p.device, dtype=p.dtype))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    return found[0] if found else None


def _one_value_refusal(name: str):
    def hook(_m, inputs):   # torch's own error is a traceback naming no layer
        x = inputs[0]
        if one_value_per_channel(x):
            raise UserError(f"BatchNorm layer {name} gets 1 value per channel from this batch (input "
                            f"{'x'.join(map(str, x.shape))}), so it has no batch statistics; expected a batch of 2 "
                            "or more images, or a model whose BatchNorm layers see more than one value per channel")
    return hook


@contextmanager
def batchnorm_train(named_modules, hold_running_stats: bool):
    """The BatchNorm layers among `named_modules` ((name, module) pairs) in train mode (batch statistics); with
    hold_running_stats their running statistics do not move (Tent), else they move at the layer's own momentum
    (TTT++'s ext.train())."""
    saved = []
    for name, m in _bn_named(named_modules):
        count = m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None
        saved.append((m, m.training, m.momentum, count, m.register_forward_pre_hook(_one_value_refusal(name))))
        m.train()
        if hold_running_stats:
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, training, momentum, count, handle in saved:
            handle.remove()
            m.train(training)
            m.momentum = momentum
            if hold_running_stats and count is not None:
                m.num_batches_tracked.copy_(count)


def batchnorm_batch_stats(model):
    """BatchNorm layers normalise with the current batch (Tent) without moving their running statistics."""
    return batchnorm_train(model.named_modules(), hold_running_stats=True)


__all__ = ["MethodConfig", "Recipe", "Method", "select_parameters", "entropy", "view_index",
           "batchnorm_batch_stats", "batchnorm_train", "single_value_layer", "PROTOCOLS", "EVAL_PROTOCOLS",
           "PARAM_CHOICES", "OPTIMIZERS"]
