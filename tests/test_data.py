"""Data sets: every layout and wrapper, label/index semantics, subsets, and every bad-input message."""
from __future__ import annotations

import io
import os
import pickle
import time
import urllib.error

import numpy as np
import pytest
from PIL import Image

from tttgui.data import (CIFAR10_CLASSES, CIFAR100_CLASSES, CifarDataset, CorruptionDataset, DataSpec,
                         ImageFilesDataset, ImageFolderDataset, Subset, class_filter, download_cifar,
                         list_corruptions, open_dataset, random_subset, read_image)
from tttgui.errors import UserError

RNG = np.random.default_rng(0)


def one_line_error(fn, *needles) -> str:
    """fn() must raise a one-line UserError containing every needle (the file, what was expected)."""
    with pytest.raises(UserError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    for needle in needles:
        assert str(needle) in message, (needle, message)
    return message


# ---------------------------------------------------------------- fixtures: tiny CIFAR, releases, images

def hwc_images(n, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def cifar_rows(images):
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)   # the release's plane-major rows


def dump(path, obj, bytes_keys=False):
    if bytes_keys:  # what Python 2 pickles look like to Python 3
        obj = {k.encode(): v for k, v in obj.items()}
    path.write_bytes(pickle.dumps(obj, protocol=2))


def make_cifar10(root, per_batch=4, n_test=6, bytes_keys=False):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = hwc_images(5 * per_batch, seed=1)
    train_labels = np.arange(5 * per_batch) % 10
    for k in range(5):
        part = slice(k * per_batch, (k + 1) * per_batch)
        dump(folder / f"data_batch_{k + 1}", {"data": cifar_rows(train[part]),
                                               "labels": train_labels[part].tolist()}, bytes_keys)
    test = hwc_images(n_test, seed=2)
    test_labels = (np.arange(n_test) * 3) % 10
    dump(folder / "test_batch", {"data": cifar_rows(test), "labels": test_labels.tolist()}, bytes_keys)
    dump(folder / "batches.meta", {"label_names": list(CIFAR10_CLASSES), "num_vis": 3072}, bytes_keys)
    return folder, (train, train_labels), (test, test_labels)


def make_cifar100(root, n_train=7, n_test=5):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    train, test = hwc_images(n_train, seed=3), hwc_images(n_test, seed=4)
    dump(folder / "train", {"data": cifar_rows(train), "fine_labels": [99, 0, 50, 3, 7, 8, 9][:n_train],
                            "coarse_labels": [0] * n_train})
    dump(folder / "test", {"data": cifar_rows(test), "fine_labels": [42] * n_test, "coarse_labels": [1] * n_test})
    dump(folder / "meta", {"fine_label_names": list(CIFAR100_CLASSES), "coarse_label_names": ["a", "b"]})
    return folder, train, test


def make_release(root, n=4, size=8, corruptions=("fog", "snow")):
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for k, name in enumerate(corruptions):
        arrays[name] = hwc_images(5 * n, size, seed=10 + k)
        np.save(root / f"{name}.npy", arrays[name])
    labels = np.tile(np.arange(n) % 10, 5).astype(np.uint8)   # the release stores uint8, tiled 5 times
    np.save(root / "labels.npy", labels)
    return arrays, labels


def save_png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def make_folder(root, per_class=3, classes=("cat", "dog", "frog"), size=8):
    expected = []
    for label, name in enumerate(classes):
        for k in range(per_class):
            image = hwc_images(1, size, seed=100 * label + k)[0]
            save_png(root / name / f"{k:03d}.png", image)
            expected.append((image, label))
    return expected


# ---------------------------------------------------------------- CIFAR python layout

@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar10_splits_read_hwc_images_labels_and_names(tmp_path, bytes_keys):
    folder, (train, train_labels), (test, test_labels) = make_cifar10(tmp_path, bytes_keys=bytes_keys)
    ds = CifarDataset(folder, "train")
    assert len(ds) == 20 and ds.classes == list(CIFAR10_CLASSES)
    images, labels = ds.arrays()
    assert images.dtype == np.uint8 and images.shape == (20, 32, 32, 3)
    assert np.array_equal(images, train) and np.array_equal(labels, train_labels)
    image, label, index = ds[7]
    assert np.array_equal(image, train[7]) and label == train_labels[7] and index == 7
    test_ds = CifarDataset(folder, "test")
    assert np.array_equal(test_ds.arrays()[0], test) and np.array_equal(test_ds.labels(), test_labels)


def test_cifar_is_found_from_the_folder_or_its_parent_and_defaults_to_test(tmp_path):
    folder, _, (test, _) = make_cifar10(tmp_path)
    for path in (folder, tmp_path):
        ds = open_dataset(path)
        assert isinstance(ds, CifarDataset) and ds.split == "test" and len(ds) == len(test)
    assert len(open_dataset(tmp_path, split="train")) == 20


def test_cifar100_uses_fine_labels_and_names(tmp_path):
    folder, train, test = make_cifar100(tmp_path)
    ds = open_dataset(tmp_path, split="train")
    assert ds.classes == list(CIFAR100_CLASSES) and len(ds.classes) == 100
    assert ds.labels().tolist() == [99, 0, 50, 3, 7, 8, 9]
    assert np.array_equal(ds[0][0], train[0]) and ds.classes[ds[0][1]] == "worm"
    assert open_dataset(folder).labels().tolist() == [42] * 5


def test_cifar_errors_name_the_file_and_the_expectation(tmp_path):
    folder, _, _ = make_cifar10(tmp_path / "a")
    os.remove(folder / "data_batch_3")
    one_line_error(lambda: CifarDataset(folder, "train"), "data_batch_3", "not found", "expected", "data_batch_1")
    one_line_error(lambda: CifarDataset(folder, "validation"), "validation", "expected one of train, test")

    folder, _, _ = make_cifar10(tmp_path / "b")
    whole = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(whole[: len(whole) // 2])
    one_line_error(lambda: CifarDataset(folder), "test_batch", "truncated", "expected a pickled batch")

    dump(folder / "test_batch", {"data": np.zeros((3, 100), np.uint8), "labels": [0, 1, 2]})
    one_line_error(lambda: CifarDataset(folder), "test_batch", "(3, 100)", "expected N×3072 uint8")
    dump(folder / "test_batch", {"data": np.zeros((3, 3072), np.uint8), "labels": [0, 1]})
    one_line_error(lambda: CifarDataset(folder), "test_batch", "2 'labels' for 3 images", "expected one label")
    dump(folder / "test_batch", {"data": np.zeros((1, 3072), np.uint8), "labels": [10]})
    one_line_error(lambda: CifarDataset(folder), "labels 10..10", "expected 0..9")


def test_cifar_pickles_cannot_run_code(tmp_path):
    folder, _, _ = make_cifar10(tmp_path)
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "test_batch").write_bytes(pickle.dumps({"data": Evil(), "labels": []}))
    one_line_error(lambda: CifarDataset(folder), "test_batch", "UnpicklingError")
    assert not marker.exists()


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def fake_cifar10(root, train=True, download=False):
        calls.append((root, train, download))
        make_cifar10(tmp_path / "dl")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    folder = download_cifar(tmp_path / "dl")
    assert calls == [(str(tmp_path / "dl"), False, True)]
    assert folder == tmp_path / "dl" / "cifar-10-batches-py" and len(open_dataset(folder)) == 6


def test_download_without_network_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(root, train=True, download=False):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    one_line_error(lambda: download_cifar(tmp_path / "c100", "cifar100"), "CIFAR-100", str(tmp_path / "c100"),
                   "name resolution", "expected a network connection", "cifar-100-python")
    one_line_error(lambda: download_cifar(tmp_path, "mnist"), "mnist", "expected one of cifar10, cifar100")


# ---------------------------------------------------------------- CIFAR-10-C release

def test_release_severity_selects_rows_and_index_is_the_test_image(tmp_path):
    arrays, labels = make_release(tmp_path / "c10c")
    assert list_corruptions(tmp_path / "c10c") == ["fog", "snow"]
    ds = open_dataset(tmp_path / "c10c", corruption="snow", severity=3)
    assert isinstance(ds, CorruptionDataset) and len(ds) == 4
    assert isinstance(ds.images.base if ds.images.base is not None else ds.images, np.memmap)  # instant open
    image, label, index = ds[1]
    assert np.array_equal(image, arrays["snow"][2 * 4 + 1]) and label == labels[9] and index == 1
    images, ys = ds.arrays()
    assert np.array_equal(images, arrays["snow"][8:12]) and ys.dtype == np.int64
    assert ds.classes == list(CIFAR10_CLASSES) and image.flags.writeable
    every = CorruptionDataset(tmp_path / "c10c", "fog")
    assert len(every) == 20 and every[13][2] == 13 and np.array_equal(every[13][0], arrays["fog"][13])


def test_release_file_path_class_names_and_short_labels(tmp_path):
    arrays, labels = make_release(tmp_path / "CIFAR-100-C", corruptions=("fog",))
    ds = open_dataset(tmp_path / "CIFAR-100-C" / "fog.npy", severity=5)
    assert ds.corruption == "fog" and ds.classes == list(CIFAR100_CLASSES)
    assert np.array_equal(ds[0][0], arrays["fog"][16])
    np.save(tmp_path / "CIFAR-100-C" / "labels.npy", np.array([1, 0, 1, 0], np.int64))   # one severity's worth
    (tmp_path / "CIFAR-100-C" / "classes.txt").write_text("yes\nno\n")
    ds = open_dataset(tmp_path / "CIFAR-100-C", severity=2)   # the only corruption is chosen
    assert ds.classes == ["yes", "no"] and ds.labels().tolist() == [1, 0, 1, 0]
    # the release's own names win over a caller's, which stand in only for a release that names none
    assert open_dataset(tmp_path / "CIFAR-100-C", severity=1, class_names=("a", "b")).classes == ["yes", "no"]
    os.remove(tmp_path / "CIFAR-100-C" / "classes.txt")
    # a release naming no classes: a model of other classes lends its order (releases made elsewhere) ...
    assert open_dataset(tmp_path / "CIFAR-100-C", severity=1, class_names=("a", "b")).classes == ["a", "b"]
    # ... one with the CIFAR classes its labels suggest, in another order, is scored by name, not by position ...
    shuffled = tuple(reversed(CIFAR100_CLASSES))
    assert open_dataset(tmp_path / "CIFAR-100-C", severity=1, class_names=shuffled).classes == list(CIFAR100_CLASSES)
    # ... and one where a suggested class sits at another index (the readings disagree) is refused in one line
    one_line_error(lambda: open_dataset(tmp_path / "CIFAR-100-C", severity=1, class_names=("x", "apple")),
                   "names no classes", "apple would be another class", "expected a classes.txt")
    (tmp_path / "CIFAR-100-C" / "corrupt.json").write_text(   # what tttgui corrupt writes
        '{"corruptions": ["fog"], "severities": [1, 2, 3, 4, 5], "images": 4, "complete": true, "labeled": true, '
        '"classes": ["yes", "no"]}')
    assert open_dataset(tmp_path / "CIFAR-100-C" / "fog.npy", severity=1, class_names=("a", "b")).classes != ["a", "b"]


def test_release_errors_name_the_file_and_the_expectation(tmp_path):
    root = tmp_path / "rel"
    make_release(root)
    one_line_error(lambda: open_dataset(root, corruption="frosty", severity=1), "frosty", str(root),
                   "expected one of: fog, snow")
    one_line_error(lambda: open_dataset(root, severity=1), "2 corruptions", "fog, snow")
    for bad in (0, 6, "x", 2.5, True):
        one_line_error(lambda: open_dataset(root, corruption="fog", severity=bad), "fog.npy",
                       "expected an integer 1..5")
    np.save(root / "wide.npy", np.zeros((10, 8, 8), np.uint8))
    one_line_error(lambda: open_dataset(root, corruption="wide"), "wide.npy", "(10, 8, 8)", "expected (5·N, H, W, 3)")
    np.save(root / "odd.npy", np.zeros((7, 8, 8, 3), np.uint8))
    one_line_error(lambda: open_dataset(root, corruption="odd"), "odd.npy", "5 severities stacked")
    np.save(root / "floaty.npy", np.zeros((5, 8, 8, 3), np.float32))
    one_line_error(lambda: open_dataset(root, corruption="floaty"), "floaty.npy", "float32", "uint8")
    whole = (root / "snow.npy").read_bytes()
    (root / "snow.npy").write_bytes(whole[: len(whole) // 2])
    one_line_error(lambda: open_dataset(root, corruption="snow"), "snow.npy", "truncated", "expected (5·N, H, W, 3)")
    np.save(root / "labels.npy", np.zeros(7, np.uint8))
    one_line_error(lambda: open_dataset(root, corruption="fog"), "labels.npy", "(7,)", "expected (20,) integers")
    one_line_error(lambda: open_dataset(root / "labels.npy"), "labels.npy", "expected a <corruption>.npy")
    os.remove(root / "labels.npy")
    one_line_error(lambda: open_dataset(root, corruption="fog"), "labels.npy", "not found", "expected labels.npy")


def test_corruption_options_on_a_clean_data_set_are_an_error(tmp_path):
    make_folder(tmp_path / "clean")
    one_line_error(lambda: open_dataset(tmp_path / "clean", corruption="fog", severity=1), str(tmp_path / "clean"),
                   "not a corruption release", "expected a folder of <corruption>.npy")


# ---------------------------------------------------------------- ImageFolder

def test_image_folder_labels_indices_and_threaded_arrays(tmp_path):
    expected = make_folder(tmp_path / "set", per_class=100)   # 300 images: arrays() uses threads
    ds = open_dataset(tmp_path / "set")
    assert isinstance(ds, ImageFolderDataset) and ds.classes == ["cat", "dog", "frog"] and len(ds) == 300
    image, label, index = ds[150]
    assert np.array_equal(image, expected[150][0]) and label == 1 and index == 150
    images, labels = ds.arrays()
    assert np.array_equal(images, np.stack([e[0] for e in expected]))
    assert labels.tolist() == [e[1] for e in expected] == ds.labels().tolist()
    sub_images, sub_labels = ds.arrays([299, 0, -1])
    assert np.array_equal(sub_images[0], expected[299][0]) and sub_labels.tolist() == [2, 0, 2]


def test_linked_folders_and_files_count_each_real_image_once(tmp_path):
    make_folder(tmp_path / "set", per_class=2, classes=("cat", "dog"))
    os.symlink("..", tmp_path / "set" / "cat" / "loop")   # cat/loop/cat/loop/... would repeat cat's images
    os.symlink(tmp_path / "set" / "dog", tmp_path / "set" / "cat" / "also_dog")
    os.symlink(tmp_path / "elsewhere", tmp_path / "set" / "dog" / "a")
    os.symlink(tmp_path / "elsewhere", tmp_path / "set" / "dog" / "b")
    os.symlink("000.png", tmp_path / "set" / "dog" / "copy.png")
    save_png(tmp_path / "elsewhere" / "x.png", hwc_images(1, 8)[0])
    ds = open_dataset(tmp_path / "set")
    names = [os.path.relpath(f, tmp_path / "set") for f in ds.files]
    # cat/also_dog/ is dog/ reached through a link: cat keeps it (first seen), dog's own walk is separate
    assert names == ["cat/000.png", "cat/001.png", "cat/also_dog/000.png", "cat/also_dog/001.png",
                     "cat/also_dog/a/x.png", "dog/000.png", "dog/001.png", "dog/a/x.png"]
    assert ds.labels().tolist() == [0, 0, 0, 0, 0, 1, 1, 1]


def test_split_parent_folder_opens_the_split(tmp_path):
    make_folder(tmp_path / "data" / "train", per_class=2)
    make_folder(tmp_path / "data" / "test", per_class=1)
    assert len(open_dataset(tmp_path / "data")) == 3
    assert len(open_dataset(tmp_path / "data", split="train")) == 6
    one_line_error(lambda: open_dataset(tmp_path / "data", split="val"), "data", "'val'",
                   "expected one of: test, train")


def test_folder_errors_name_the_folder_and_the_expectation(tmp_path):
    one_line_error(lambda: open_dataset(tmp_path / "nowhere"), "nowhere", "not found", "expected an image folder")
    (tmp_path / "empty").mkdir()
    one_line_error(lambda: open_dataset(tmp_path / "empty"), "empty", "is empty", "expected an image folder")
    (tmp_path / "hollow" / "cat").mkdir(parents=True)
    (tmp_path / "hollow" / "cat" / "notes.txt").write_text("no images here")
    one_line_error(lambda: open_dataset(tmp_path / "hollow"), "hollow", "no images", "expected files ending in")
    one_line_error(lambda: ImageFolderDataset(tmp_path / "nowhere"), "nowhere", "expected a folder")


def test_corrupt_image_in_a_folder_is_named_when_read(tmp_path):
    make_folder(tmp_path / "set", per_class=2)
    (tmp_path / "set" / "dog" / "001.png").write_bytes(b"not a png at all")
    ds = open_dataset(tmp_path / "set")
    one_line_error(lambda: ds[3], "001.png", "corrupt or truncated", "expected an image file Pillow can read")
    one_line_error(ds.arrays, "001.png", "corrupt or truncated")


def test_images_of_different_sizes_cannot_be_stacked(tmp_path):
    make_folder(tmp_path / "set", per_class=2)
    save_png(tmp_path / "set" / "frog" / "big.png", hwc_images(1, 16)[0])
    ds = open_dataset(tmp_path / "set")
    assert ds[len(ds) - 1][0].shape == (16, 16, 3)
    one_line_error(ds.arrays, "big.png", "16x16", "expected 8x8")


# ---------------------------------------------------------------- single image files

def image_of_every_mode(tmp_path):
    rgb = hwc_images(1, 6, seed=7)[0]
    gray = rgb[..., 0]
    out = {}
    out["rgb"] = (save_png(tmp_path / "rgb.png", rgb), rgb)
    out["L"] = (save_png(tmp_path / "gray.png", gray), np.repeat(gray[..., None], 3, 2))
    out["1"] = (tmp_path / "bits.png", None)
    Image.fromarray(gray > 127).save(out["1"][0])
    out["1"] = (out["1"][0], np.repeat(np.where(gray > 127, 255, 0).astype(np.uint8)[..., None], 3, 2))
    sixteen = gray.astype(np.uint16) * 257   # full-range 16-bit equivalent of the 8-bit values
    Image.fromarray(sixteen).save(tmp_path / "g16.png")
    out["I;16"] = (tmp_path / "g16.png", np.repeat(gray[..., None], 3, 2))
    rgba = np.concatenate([rgb, np.full((6, 6, 1), 255, np.uint8)], axis=2)
    rgba[0, 0, 3] = 0   # one transparent pixel: shown on white
    out["RGBA"] = (save_png(tmp_path / "rgba.png", rgba), rgb.copy())
    out["RGBA"][1][0, 0] = 255
    palette = Image.fromarray(rgb).quantize(8)
    palette.save(tmp_path / "pal.png")
    out["P"] = (tmp_path / "pal.png", np.asarray(palette.convert("RGB")))
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    out["CMYK"] = (tmp_path / "cmyk.jpg", None)
    return out


def test_single_images_of_every_mode_read_as_rgb_uint8(tmp_path):
    for mode, (path, expected) in image_of_every_mode(tmp_path).items():
        ds = open_dataset(path)
        assert isinstance(ds, ImageFilesDataset) and len(ds) == 1 and ds.classes == []
        image, label, index = ds[0]
        assert image.dtype == np.uint8 and image.shape == (6, 6, 3) and label == -1 and index == 0, mode
        if expected is not None:
            assert np.array_equal(image, expected), mode
    cmyk = read_image(tmp_path / "cmyk.jpg").astype(int)
    assert np.abs(cmyk - hwc_images(1, 6, seed=7)[0]).mean() < 12   # JPEG is lossy; colours come back


def test_exif_orientation_is_applied(tmp_path):
    tall = np.zeros((4, 2, 3), np.uint8)
    tall[0, 0] = 255   # the first stored pixel
    exif = Image.Exif()
    exif[0x0112] = 6   # "rotate 90° clockwise to display"
    Image.fromarray(tall).save(tmp_path / "rot.png", exif=exif.tobytes())
    image = read_image(tmp_path / "rot.png")
    assert image.shape == (2, 4, 3) and image[0, -1].tolist() == [255, 255, 255]


def test_file_lists_and_caller_class_names(tmp_path):
    paths = [save_png(tmp_path / f"{k}.png", hwc_images(1, 5, seed=k)[0]) for k in range(3)]
    ds = open_dataset(paths, class_names=CIFAR10_CLASSES)
    assert len(ds) == 3 and ds.classes == list(CIFAR10_CLASSES) and ds.labels().tolist() == [-1, -1, -1]
    assert np.array_equal(ds[2][0], hwc_images(1, 5, seed=2)[0]) and ds[2][2] == 2
    assert ds.arrays()[0].shape == (3, 5, 5, 3)
    loose = open_dataset(tmp_path)   # a folder of images without class folders
    assert isinstance(loose, ImageFilesDataset) and len(loose) == 3
    one_line_error(lambda: open_dataset([paths[0], tmp_path]), str(tmp_path), "expected image files only")
    one_line_error(lambda: open_dataset([paths[0], tmp_path / "gone.png"]), "gone.png", "not found")


def test_corrupt_and_truncated_image_files(tmp_path):
    (tmp_path / "noise.jpg").write_bytes(bytes(RNG.integers(0, 256, 500, dtype=np.uint8)))
    one_line_error(lambda: open_dataset(tmp_path / "noise.jpg"), "noise.jpg", "corrupt or truncated",
                   "expected an image file Pillow can read")
    buffer = io.BytesIO()
    Image.fromarray(hwc_images(1, 64)[0]).save(buffer, "JPEG")
    (tmp_path / "half.jpg").write_bytes(buffer.getvalue()[:400])
    one_line_error(lambda: open_dataset(tmp_path / "half.jpg"), "half.jpg", "truncated", "expected")
    one_line_error(lambda: read_image(tmp_path / "absent.png"), "absent.png", "not found", "expected")


# ---------------------------------------------------------------- subsets and class filters

def test_random_subset_is_deterministic_sorted_and_keeps_original_indices(tmp_path):
    base = CifarDataset(make_cifar10(tmp_path)[0], "train")
    a, b, c = random_subset(base, 7, seed=3), random_subset(base, 7, seed=3), random_subset(base, 7, seed=4)
    assert isinstance(a, Subset) and len(a) == 7 and a.base is base
    assert np.array_equal(a.indices, b.indices) and not np.array_equal(a.indices, c.indices)
    assert np.all(np.diff(a.indices) > 0)
    # the same images as training's --limit draw
    assert np.array_equal(a.indices, np.sort(np.random.default_rng(3).permutation(20)[:7]))
    image, label, index = a[2]
    assert index == a.indices[2] and np.array_equal(image, base[index][0]) and label == base[index][1]
    images, labels = a.arrays()
    assert np.array_equal(images, base.arrays(a.indices)[0]) and np.array_equal(labels, base.labels()[a.indices])
    assert len(random_subset(base, 1000)) == 20
    one_line_error(lambda: random_subset(base, 0), "limit 0", "expected a whole number of images >= 1")


def test_class_filter_by_name_index_and_string_keeps_labels(tmp_path):
    expected = make_folder(tmp_path / "set", per_class=4)
    base = open_dataset(tmp_path / "set")
    for classes in (["dog"], [1], "dog", "DOG", "1", (1,)):
        ds = class_filter(base, classes)
        assert ds.indices.tolist() == [4, 5, 6, 7] and ds.labels().tolist() == [1] * 4
    ds = class_filter(base, "cat,frog")
    assert ds.indices.tolist() == [0, 1, 2, 3, 8, 9, 10, 11] and ds.classes == ["cat", "dog", "frog"]
    image, label, index = ds[5]
    assert index == 9 and label == 2 and np.array_equal(image, expected[9][0])
    one_line_error(lambda: class_filter(base, "horse"), "horse", str(tmp_path / "set"),
                   "expected one of cat, dog, frog")
    one_line_error(lambda: class_filter(base, [3]), "class index 3", "expected one of cat, dog, frog")


def test_class_filter_errors_for_unlabelled_and_absent_classes(tmp_path):
    path = save_png(tmp_path / "one.png", hwc_images(1, 4)[0])
    one_line_error(lambda: open_dataset(path, classes="cat"), "one.png", "no class names", "expected a labelled")
    one_line_error(lambda: open_dataset(path, classes="cat", class_names=["cat", "dog"]), "one.png",
                   "no images of class cat", "expected a class that occurs")


def test_filter_then_subset_compose_to_original_indices(tmp_path):
    make_folder(tmp_path / "set", per_class=10)
    ds = open_dataset(tmp_path / "set", classes=["frog"], limit=4, seed=5)
    assert isinstance(ds, Subset) and len(ds) == 4 and ds.base.source == str(tmp_path / "set")
    assert set(ds.indices.tolist()) <= set(range(20, 30)) and ds.labels().tolist() == [2] * 4
    assert [ds[k][2] for k in range(4)] == ds.indices.tolist()
    again = DataSpec(str(tmp_path / "set"), classes=("frog",), limit=4, seed=5).open()
    assert np.array_equal(again.indices, ds.indices)
    with pytest.raises(Exception):
        DataSpec("x").path = "y"   # frozen


# ---------------------------------------------------------------- the shared real data

def test_real_cifar10_test_folder_matches_torchvision_order(cifar_test_dir):
    from torchvision.datasets import ImageFolder

    ds = open_dataset(cifar_test_dir)
    reference = ImageFolder(str(cifar_test_dir))
    assert len(ds) == 10000 and ds.classes == list(CIFAR10_CLASSES) == reference.classes
    assert [str(f) for f in ds.files] == [s[0] for s in reference.samples]
    assert ds.labels().tolist() == reference.targets
    assert np.bincount(ds.labels()).tolist() == [1000] * 10


@pytest.mark.slow
def test_real_cifar10_test_arrays_decode_fast(cifar_test_dir):
    ds = open_dataset(cifar_test_dir)
    start = time.perf_counter()
    images, labels = ds.arrays()
    assert time.perf_counter() - start < 30
    assert images.shape == (10000, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images[1234], ds[1234][0]) and labels[1234] == ds[1234][1]
