"""The model card written beside every checkpoint `tttgui train` makes: how it was trained, on what, for how long,
and what it scores (tttgui stats rewrites its source-statistics line)."""
from __future__ import annotations

from pathlib import Path

import torch

from tttgui.atomic import write_text
from tttgui.errors import shown

FINETUNE_TEXT = {"joint": "joint (cross-entropy + the self-supervised losses on a shared trunk, the TTT paper's)",
                 "full": "full (cross-entropy alone, every weight)",
                 "linear": "linear (a probe on the frozen self-supervised features)",
                 "prototypes": "prototypes (forward passes only: softmax(sigma cos(f, class means)) on the "
                               "L2-normalised pooled features, Han et al. 2025's classifier)",
                 "none": "none (the self-supervised model; its classifier is untrained)"}


NO_EPOCHS = {"linear": "the classifier is a probe fitted by L-BFGS", "prototypes": "the classifier is the class means",
             "none": "the classifier is untrained"}


def stats_provenance(data: str, images: int, seed: int) -> dict:
    """What the checkpoint's source statistics were computed on, for its meta and model card."""
    return {"data": str(data), "images": int(images), "seed": int(seed), "augment": "crop4+flip",
            "how": f"{images} images drawn at random (seed {seed}) from `{data}`, with 4-px crop + flip"}


def stats_card_line(info: dict) -> str:
    """The model card's line on the source statistics (tttgui stats rewrites just this line)."""
    return f"- Source statistics: {info['how']}"


def changes_text(changes: list[dict]) -> str:
    """'after epoch 94: swa_epochs 20 -> 60; after epoch 120: ...' for the model card."""
    return "; ".join(f"after epoch {c['after_epoch']}: "
                     + ", ".join(f"{k} {old} -> {new}" for k, (old, new) in c["changed"].items())
                     for c in changes)


def write_model_card(path: Path, cfg, meta: dict, model) -> None:
    """`cfg` a tttgui.training.TrainConfig, `model` the TTTModel written beside the card."""
    from tttgui.training import PRECISION, ROTATION, trained_heads

    heads = model.spec.heads
    tuned = cfg.finetune in ("joint", "full")
    projector = model.parameter_groups().get("contrastive", [])
    batch = min(cfg.batch_size, meta.get("labeled_images") or cfg.batch_size)   # a few labels make a smaller one
    ssl_batch = min(cfg.ssl_batch_size or cfg.batch_size, meta.get("unlabeled_images") or 10 ** 9)
    threads = torch.get_num_threads()
    seconds = meta["train_seconds"]
    starts, m = [], meta    # the records of the --init runs it started from, nearest first
    while m.get("init_record"):
        m = m["init_record"]
        starts.append(m)
    before = sum(m.get("train_seconds") or 0 for m in starts)
    lines = [f"# Model card: {Path(cfg.out).name}", "",
             f"- Architecture: {model.spec.arch} {model.spec.arch_args}, heads: {', '.join(heads) or 'none'}",
             f"- Parameters: classifier network {model.classifier_param_count():,}"
             + (f", rotation head {model.rotation_param_count():,}" if "rotation" in heads else "")
             + (f", projection head {sum(p.numel() for p in projector):,}" if projector else ""),
             *([f"- Not kept: the {' and '.join(meta['dropped_heads'])} head (never trained in this run, nor in "
                f"--init: its loss would be meaningless at test time)"] if meta.get("dropped_heads") else []),
             f"- Command: `{cfg.command}`",
             (f"- Unlabeled data (phase 1, labels never read): `{cfg.unlabeled or cfg.data}`" if cfg.ssl_epochs
              else "- Unlabeled data: none in this run (no phase 1" + (", see --init's card)" if cfg.init else ")")),
             f"- Labeled data (phase 2): `{cfg.data}`, "
             + (f"{cfg.labels_per_class} labels per class" if cfg.labels_per_class
                else f"label fraction {cfg.label_fraction}") + f" ({meta.get('labeled_images', '?')} images)",
             (f"- Self-supervised phase: {cfg.ssl}, batch {ssl_batch}, peak lr "
              f"{cfg.ssl_lr or cfg.lr}" + (f", NT-Xent temperature {cfg.temperature}" if "simclr" in cfg.ssl else "")
              if cfg.ssl_epochs else "- Self-supervised phase: none in this run"
              + (f" (the weights start from `{cfg.init}`: {meta['init']})" if meta.get("init") else "")),
             *([f"- Rotation task: {ROTATION.get(cfg.rotation, cfg.rotation)}"]
               if "rotation" in trained_heads(meta["history"]) else []),
             f"- Fine-tuning: {FINETUNE_TEXT[cfg.finetune]}" if heads or cfg.finetune != "joint"
             else "- Fine-tuning: joint, with no self-supervised head: cross-entropy alone",
             f"- Test data: `{cfg.test}`" if cfg.test else "- Test data: none (no error measured)",
             (f"- Epochs: none in this run ({NO_EPOCHS[cfg.finetune]}), seed {cfg.seed}"
              if not (tuned or cfg.ssl_epochs) else f"- Epochs: {cfg.ssl_epochs} self-supervised"
              + (f" + {cfg.epochs} {cfg.finetune} fine-tuning, batch {batch}, SGD lr {cfg.lr} (cosine)"
                 if tuned else f", no fine-tuning epochs ({NO_EPOCHS[cfg.finetune]})")
              + f", momentum {cfg.momentum}, weight decay {cfg.weight_decay}, seed {cfg.seed}")
             + (f"; warm restarts after joint epochs {', '.join(map(str, meta['restarts']))} (one-epoch ramp)"
                if meta.get("restarts") else "")
             + (f"; then {cfg.swa_epochs} epoch{'s' * (cfg.swa_epochs != 1)} of weight averaging (SWA) at "
                f"constant lr {cfg.swa_lr}"
                if cfg.swa_epochs and tuned else ""),
             *([f"- Precision: {PRECISION[cfg.precision]}"] if cfg.precision != "fp32" and meta["history"] else []),
             *([f"- Changed on resume: {changes_text(meta['changes'])}"] if meta.get("changes") else []),
             f"- Wall time: {f'{seconds / 3600:.2f} h' if seconds >= 360 else f'{seconds:.0f} s'} on {cfg.device}"
             f"{' (deterministic: TF32 off, deterministic cuDNN)' if cfg.deterministic else ''} "
             f"({threads} thread{'s' * (threads != 1)}), torch {torch.__version__}"
             + (f"; with the runs it started from, {(seconds + before) / 3600:.2f} h" if before else ""),
             ]
    probe = next(((m["linear_probe"], m.get("path")) for m in [meta, *starts] if m.get("linear_probe")), None)
    if probe:
        lp, start = probe
        other = f" of `{lp['test']}`" if lp.get("test") and lp["test"] != cfg.test else ""
        whose = f"the features of the self-supervised start `{start}`" if start else "the self-supervised features"
        lines.append(f"- **Linear-probe error: {lp['error']:.2f}%** on {lp.get('test_images', '?')} test images{other} "
                     f"({whose} after phase 1, probe fitted on {lp.get('train_images', '?')} labeled images: "
                     f"{lp.get('how', '?')})")
    if "clean_error" in meta:
        lines.append(f"- **Clean error: {meta['clean_error']:.2f}%** on {meta['test_images']} test images")
    if "rotation_accuracy" in meta:
        lines.append(f"- Rotation accuracy (4 rotations of every test image): {meta['rotation_accuracy']:.2f}%")
    if "swa" in meta:
        swa, last = meta["swa"], meta["swa"].get("last_iterate")
        lines.append(f"- Weights: the mean of the weights after each of the {swa['epochs']} SWA epochs"
                     + (f" (the last SGD iterate alone: {last['clean_error']:.2f}% clean error)" if last else ""))
    if "source_stats" in meta:
        lines.append(stats_card_line(meta["source_stats"]))
    nt = any("con_loss" in e for e in meta["history"])
    lines += ["", "| epoch | phase | train CE | train acc % | rot loss | rot acc % |" + (" NT-Xent |" if nt else "")
              + " seconds |", "|---|---|---|---|---|---|" + ("---|" if nt else "") + "---|"]
    for s in meta["history"]:
        def f(k, scale=1.0, fmt="{:.3f}"):
            return fmt.format(s[k] * scale) if k in s else ""
        lines.append(f"| {s['epoch']} | {('ssl', cfg.finetune, 'swa')[s['phase'] - 1]} | {f('cls_loss')} | "
                     f"{f('cls_correct', 100, '{:.1f}')} | {f('rot_loss')} | {f('rot_correct', 100, '{:.1f}')} | "
                     + (f"{f('con_loss')} | " if nt else "") + f"{s['seconds']:.0f} |")
    # a path with undecodable bytes (surrogate escapes) is written as \xNN rather than failing
    write_text(path, shown("\n".join(lines) + "\n"))
