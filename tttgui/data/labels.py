"""Class names are the contract: a data set's labels index its own class list, a model's predictions index the
checkpoint's. These functions turn the first into the second by NAME, never by position, so a folder holding
only cat/ is scored against the model's cat (not its class 0)."""
from __future__ import annotations

import numpy as np

from tttgui.errors import UserError

UNLABELED = -1
SHOWN = 20   # class names listed in a message before it is cut short


def class_table(data_classes, model_classes) -> np.ndarray:
    """table[k] = the model's index of data class k (exact name, else case-insensitive), or -1 if it has none."""
    exact = {str(n): i for i, n in enumerate(model_classes)}
    folded = {}
    for i, n in enumerate(model_classes):
        folded.setdefault(str(n).strip().lower(), i)
    return np.array([exact.get(str(n), folded.get(str(n).strip().lower(), -1)) for n in data_classes],
                    dtype=np.int64)


def model_label(label, data_classes, model_classes) -> int | None:
    """One image's label as the model's class index; None when it has no label or the model lacks its class
    (the explorer then shows no correct/incorrect). Data without class names is taken in the model's order."""
    if label is None or int(label) < 0:
        return None
    label = int(label)
    if not data_classes:
        return label if label < len(model_classes) else None
    if label >= len(data_classes):
        return None
    k = int(class_table([data_classes[label]], model_classes)[0])
    return k if k >= 0 else None


def model_labels(labels, data_classes, model_classes, source: str) -> np.ndarray:
    """Labels (-1 = none) as the model's class indices, for scoring. Raises one line for a label the model
    cannot predict: a class it does not know, or (data without class names) an index past its classes."""
    labels = np.asarray(labels, dtype=np.int64)
    known = labels[labels != UNLABELED]
    if len(known) == 0:
        return labels.copy()
    expected = f"expected classes of the model: {names_text(model_classes)}"
    if known.min() < 0:
        raise UserError(f"{source} has label {known.min()}; expected -1 (no label) or a class index")
    if not data_classes:   # no names: the model's class order is assumed (releases without classes.txt)
        if known.max() >= len(model_classes):
            raise UserError(f"{source} has label {known.max()}, outside the model's {len(model_classes)} classes "
                            f"(0..{len(model_classes) - 1}); {expected}")
        return labels.copy()
    if known.max() >= len(data_classes):
        raise UserError(f"{source} has label {known.max()} but names {len(data_classes)} classes; expected "
                        f"labels 0..{len(data_classes) - 1}")
    table = class_table(data_classes, model_classes)
    unknown = [str(data_classes[k]) for k in np.unique(known) if table[k] < 0]
    if unknown:
        raise UserError(f"{source} has class {', '.join(unknown[:3])}{' …' if len(unknown) > 3 else ''}, which "
                        f"the model does not know; {expected}")
    out = labels.copy()
    out[labels != UNLABELED] = table[known]
    return out


def names_text(names) -> str:
    names = [str(n) for n in names]
    if len(names) <= SHOWN:
        return ", ".join(names)
    return ", ".join(names[:SHOWN]) + f", … ({len(names)} in all)"
