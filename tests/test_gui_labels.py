"""The explorer scores by class name too (issue 21): a folder of some of the model's classes is marked against
those classes, and images without labels never get an error rate."""
import numpy as np
from PIL import Image

from test_gui import CLASSES, app_threads, assets, window  # noqa: F401  (fixtures)


def test_explorer_label_is_the_models_class_of_that_name(window):
    image, label, _ = window.dataset[window.index]
    name = window.dataset.classes[label]      # the folder holds bird/ and cat/ only
    assert window.current_label == CLASSES.index(name) and window.episode.label == CLASSES.index(name)


def test_batch_refuses_images_without_labels(window, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    assert window.open_data(str(tmp_path))
    window.show_batch()
    window.batch_panel.start()
    assert not window.batch_panel.running and "no labels" in window.last_error
