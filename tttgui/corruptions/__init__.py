"""The 19 CIFAR-10-C corruptions at severities 1-5, batched and seeded (see docs in corruptions.md notes).

    corrupt(images, name, severity, seed=0, frost_dir=None, device=None) -> uint8 array of the same shape
    describe(name, severity, frost_dir=None) -> "frost s3 (generated texture)"
"""
from tttgui.corruptions.registry import (BENCHMARK_CORRUPTIONS, CORRUPTIONS, DETERMINISTIC, corrupt,
                                         describe)

__all__ = ["BENCHMARK_CORRUPTIONS", "CORRUPTIONS", "DETERMINISTIC", "corrupt", "describe"]
