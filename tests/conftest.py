import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CIFAR_TEST = SHARED / "cifar10" / "test"
CIFAR_TRAIN = SHARED / "cifar10" / "train"
FROST_DIR = SHARED / "frost"


def load_benchmark(name: str):
    """A script of benchmarks/ (not a package) imported as a module, e.g. load_benchmark("results")."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def cifar_test_dir() -> Path:
    assert CIFAR_TEST.is_dir(), f"real-data tests need {CIFAR_TEST}"
    return CIFAR_TEST


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.manual_seed(0)
    yield
