"""Class names are the contract (issue 21): data labels meet the model's predictions by NAME, unlabelled data
gets predictions and no error rate, and labels the model cannot predict are refused in one line."""
import csv
import shutil

import numpy as np
import pytest
from PIL import Image

from tttgui.cli import main
from tttgui.data.labels import model_label, model_labels
from tttgui.errors import UserError
from tttgui.evaluation import EvalConfig, evaluate
from tttgui.models import default_checkpoint_path
from tttgui.session import MethodConfig, Session

from test_eval import CLASSES as MODEL_CLASSES, setup as tiny  # noqa: F401  (a 3-class checkpoint: cat, dog, ship)


def pngs(folder, n, seed=0, size=16):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def release(root, labels, classes_txt=None, size=16):
    """A -C release of one corruption: 5 severities of len(labels) images."""
    root.mkdir(parents=True)
    n = len(labels)
    np.save(root / "fog.npy", np.random.default_rng(1).integers(0, 256, (5 * n, size, size, 3), dtype=np.uint8))
    np.save(root / "labels.npy", np.tile(np.asarray(labels, np.int64), 5))
    if classes_txt:
        (root / "classes.txt").write_text("\n".join(classes_txt) + "\n")
    return root


def eval_cli(checkpoint, data, out, *extra):
    return main(["eval", "--device", "cpu", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out),
                 "--corruptions", "none", "--methods", "source", "--no-progress", *extra])


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def scored(out):
    """(labels, predictions before) from images.csv and the error summary.csv reports."""
    rows = read(out / "images.csv")
    labels = [int(r["label"]) for r in rows]
    preds = [int(r["prediction_before"]) for r in rows]
    return labels, preds, read(out / "summary.csv")[0]["error_before"]


def one_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# ------------------------------------------------------------------------------------- the mapping function

def test_labels_are_mapped_by_name_not_position():
    assert model_labels([0, 0, 1, -1], ["dog", "Ship"], MODEL_CLASSES, "d").tolist() == [1, 1, 2, -1]
    assert model_labels([2, 0], [], MODEL_CLASSES, "d").tolist() == [2, 0]   # no names: the model's order
    assert model_labels([-1, -1], [], MODEL_CLASSES, "d").tolist() == [-1, -1]
    with pytest.raises(UserError, match="frog, which the model does not know.*cat, dog, ship"):
        model_labels([0, 1], ["cat", "frog"], MODEL_CLASSES, "d")
    model_labels([0], ["cat", "frog"], MODEL_CLASSES, "d")   # a class with no images is never scored
    with pytest.raises(UserError, match="label 109, outside the model's 3 classes"):
        model_labels([100, 109], [], MODEL_CLASSES, "d")
    with pytest.raises(UserError, match="label 2 but names 2 classes"):
        model_labels([2], ["cat", "dog"], MODEL_CLASSES, "d")
    with pytest.raises(UserError, match="label -3"):
        model_labels([-3], ["cat"], MODEL_CLASSES, "d")
    many = [f"c{k}" for k in range(100)]
    message = str(pytest.raises(UserError, model_labels, [0], ["x"], many, "d").value)
    assert "\n" not in message and "(100 in all)" in message and "c19" in message and "c20" not in message


def test_one_label_for_the_explorer():
    assert model_label(0, ["dog"], MODEL_CLASSES) == 1
    assert model_label(0, ["frog"], MODEL_CLASSES) is None    # unknown class: no correct/incorrect shown
    assert model_label(-1, MODEL_CLASSES, MODEL_CLASSES) is None and model_label(None, [], MODEL_CLASSES) is None
    assert model_label(2, [], MODEL_CLASSES) == 2 and model_label(3, [], MODEL_CLASSES) is None


# ------------------------------------------------------------------------------------- tttgui eval

def test_a_folder_of_some_of_the_models_classes_is_scored_by_name(tiny, tmp_path):
    root, _, _ = tiny
    pngs(tmp_path / "only" / "dog", 3)
    assert eval_cli(root / "ck.pt", tmp_path / "only", tmp_path / "a") == 0
    labels, preds, error = scored(tmp_path / "a")
    assert labels == [1, 1, 1]   # dog is the model's class 1, not the folder's class 0
    assert float(error) == pytest.approx(100 * np.mean(np.array(preds) != 1), abs=1e-3)
    pngs(tmp_path / "two" / "ship", 2, seed=1)
    pngs(tmp_path / "two" / "cat", 2, seed=2)
    assert eval_cli(root / "ck.pt", tmp_path / "two", tmp_path / "b") == 0
    assert scored(tmp_path / "b")[0] == [0, 0, 2, 2]


def test_a_class_the_model_does_not_know_is_one_line(tiny, tmp_path, capsys):
    root, _, _ = tiny
    pngs(tmp_path / "data" / "cat", 1)
    pngs(tmp_path / "data" / "frog", 1)
    assert eval_cli(root / "ck.pt", tmp_path / "data", tmp_path / "out") == 2
    one_line(capsys, "frog", "cat, dog, ship")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("single", [False, True])
def test_unlabelled_images_get_predictions_and_no_error_rate(tiny, tmp_path, capsys, single):
    root, _, _ = tiny
    data = pngs(tmp_path / "flat", 3)
    if single:
        data = data / "1.png"
    assert eval_cli(root / "ck.pt", data, tmp_path / "out", "--methods", "source,ttt", "--steps", "1",
                    "--views", "4") == 0
    printed = capsys.readouterr().out
    assert "no labels" in printed and "n/a" in printed
    for row in read(tmp_path / "out" / "summary.csv"):
        assert row["error_before"] == "" and row["error_after"] == "", row
    images = read(tmp_path / "out" / "images.csv")
    assert len(images) == (2 if single else 6)
    assert all(r["label"] == "-1" and r["prediction_after"] in ("0", "1", "2") for r in images)


def test_release_labels_the_model_cannot_predict_are_refused(tiny, tmp_path, capsys):
    root, _, _ = tiny
    release(tmp_path / "wide", range(100, 110))
    assert eval_cli(root / "ck.pt", tmp_path / "wide", tmp_path / "out", "--corruptions", "none") == 2
    one_line(capsys, "109")
    assert not (tmp_path / "out").exists()


def test_release_without_class_list_takes_the_models_order(tiny, tmp_path):
    root, _, _ = tiny
    release(tmp_path / "rel", [2, 0, 1])
    assert eval_cli(root / "ck.pt", tmp_path / "rel" / "fog.npy", tmp_path / "out") == 0
    assert scored(tmp_path / "out")[0] == [2, 0, 1] * 5   # all 5 severities' rows


def test_release_class_list_is_matched_by_name(tiny, tmp_path, capsys):
    root, _, _ = tiny
    release(tmp_path / "rel", [0, 1, 0], classes_txt=["ship", "cat"])
    assert eval_cli(root / "ck.pt", tmp_path / "rel" / "fog.npy", tmp_path / "out") == 0
    assert scored(tmp_path / "out")[0] == [2, 0, 2] * 5
    (tmp_path / "rel" / "classes.txt").write_text("ship\nunicorn\n")
    assert eval_cli(root / "ck.pt", tmp_path / "rel" / "fog.npy", tmp_path / "out2", "--limit", "3") == 2
    one_line(capsys, "unicorn", "cat, dog, ship")


def test_release_written_by_corrupt_keeps_its_class_names(tiny, tmp_path):
    root, _, _ = tiny
    pngs(tmp_path / "data" / "dog", 2)
    pngs(tmp_path / "data" / "ship", 2, seed=1)
    assert main(["corrupt", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "rel"), "--corruptions",
                 "gaussian_noise", "--severities", "2", "--no-progress"]) == 0
    assert eval_cli(root / "ck.pt", tmp_path / "rel", tmp_path / "out") == 0
    assert scored(tmp_path / "out")[0] == [1, 1, 2, 2]   # dog and ship, not the model's cat and dog


def test_cifar_cats_alone_are_scored_as_cats(cifar_test_dir, tmp_path):
    """The tester's case: the shipped model and a folder holding only cat/ (was label 0, airplane: 100 %)."""
    for k in range(8):
        name = f"{k:04d}.jpg"
        (tmp_path / "cats" / "cat").mkdir(parents=True, exist_ok=True)
        shutil.copy(cifar_test_dir / "cat" / name, tmp_path / "cats" / "cat" / name)
    assert eval_cli(default_checkpoint_path(), tmp_path / "cats", tmp_path / "out") == 0
    labels, preds, error = scored(tmp_path / "out")
    assert labels == [3] * 8 and float(error) < 50 and preds.count(3) >= 4


# ------------------------------------------------------------------------------------- engine and session

def test_engine_refuses_labels_past_the_models_classes(tiny):
    _, model, stats = tiny
    images = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(UserError, match="label 3 is outside the model's 3 classes"):
        evaluate(model, stats, images, np.array([0, 3]), np.arange(2), EvalConfig(methods=("source",)), "cpu")


def test_session_takes_minus_one_as_no_label_and_refuses_others(tiny):
    _, model, stats = tiny
    s = Session(model, stats, MethodConfig("ttt", views=4), "cpu")
    image = np.zeros((16, 16, 3), np.uint8)
    first = s.set_image(image, label=-1)
    assert first.label is None and first.correct is None
    assert s.step().grad_cosine is None and s.result().correct_after is None
    with pytest.raises(UserError, match="label 3 is outside the model's 3 classes"):
        s.set_image(image, label=3)
