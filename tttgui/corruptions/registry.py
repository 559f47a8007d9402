"""Names, validation, seeding and batching around the corruption functions."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

from tttgui.corruptions import blur, digital, frost, geometry, noise, weather
from tttgui.corruptions.context import Context
from tttgui.device import no_tf32
from tttgui.errors import UserError

FUNCTIONS = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "defocus_blur": blur.defocus_blur,
    "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur,
    "snow": weather.snow,
    "frost": frost.frost,
    "fog": weather.fog,
    "brightness": digital.brightness,
    "contrast": digital.contrast,
    "elastic_transform": geometry.elastic_transform,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
    "speckle_noise": noise.speckle_noise,
    "gaussian_blur": blur.gaussian_blur,
    "spatter": weather.spatter,
    "saturate": digital.saturate,
}
CORRUPTIONS = tuple(FUNCTIONS)
BENCHMARK_CORRUPTIONS = CORRUPTIONS[:15]
DETERMINISTIC = ("defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression",
                 "gaussian_blur", "saturate")
SMALL_SIDE = 64  # images up to this side get the CIFAR parameters, larger ones the ImageNet-C parameters
CHUNK_PIXELS = 256 * 32 * 32  # pixels per step (256 CIFAR images): the temporaries stay in the CPU caches
WORKERS = 2  # chunks run in parallel threads, each single-threaded: no per-op barriers (robust on a busy CPU)


def check_name(name) -> str:
    if name not in FUNCTIONS:
        raise UserError(f"unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}")
    return name


def check_severity(severity) -> int:
    ok = isinstance(severity, (int, np.integer)) and not isinstance(severity, bool) and 1 <= severity <= 5
    if not ok:
        raise UserError(f"severity {severity!r} is outside 1..5; expected an integer from 1 to 5")
    return int(severity)


def describe(name: str, severity: int, frost_dir=None) -> str:
    check_name(name), check_severity(severity)
    if name == "frost":
        return f"frost s{severity} ({frost.frost_source(frost_dir)})"
    return f"{name} s{severity}"


def _as_batch(images) -> tuple[np.ndarray, bool]:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise UserError(f"images have dtype {images.dtype}; expected uint8 RGB (H×W×3 or N×H×W×3)")
    if images.ndim == 3 and images.shape[-1] == 3:
        return images[None], True
    if images.ndim == 4 and images.shape[-1] == 3:
        return images, False
    raise UserError(f"images have shape {images.shape}; expected H×W×3 or N×H×W×3 uint8 RGB")


def chunk_size(h: int, w: int) -> int:
    """Images per chunk: depends only on the image size, so results never depend on the batch size used."""
    return max(1, CHUNK_PIXELS // (h * w))


def corrupt(images, name: str, severity: int, seed: int = 0, frost_dir=None, device=None) -> np.ndarray:
    """Corrupt one image (H×W×3) or a batch (N×H×W×3) of uint8 RGB; the same seed gives the same bytes."""
    fn = FUNCTIONS[check_name(name)]
    severity = check_severity(severity)
    batch, single = _as_batch(images)
    if min(batch.shape[1:3]) < 8:
        raise UserError(f"images are {batch.shape[1]}×{batch.shape[2]} px; expected at least 8×8")
    dev = torch.device("cpu") if device is None else torch.device(device)
    large = max(batch.shape[1:3]) > SMALL_SIDE
    frost_dir = None if frost_dir is None else str(frost_dir)
    step = chunk_size(*batch.shape[1:3])
    out = np.empty_like(batch)

    def run(start: int) -> None:
        # one stream per (seed, corruption, severity, chunk): severities and corruptions never share draws,
        # and chunks can run in any order or in parallel
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, CORRUPTIONS.index(name), severity, start // step])
        ctx = Context(rng=rng, device=dev, large=large, frost_dir=frost_dir)
        x = torch.from_numpy(np.ascontiguousarray(batch[start:start + step])).to(dev).permute(0, 3, 1, 2)
        y = fn(x.contiguous(), severity, ctx)
        out[start:start + step] = y.permute(0, 2, 3, 1).cpu().numpy()

    starts = range(0, len(batch), step)
    if dev.type != "cpu":
        with no_tf32():
            for start in starts:
                run(start)
    else:
        with _one_thread():
            if len(starts) == 1:
                run(0)
            else:
                with ThreadPoolExecutor(WORKERS, initializer=torch.set_num_threads, initargs=(1,)) as pool:
                    list(pool.map(run, starts))
    return out[0] if single else out


@contextmanager
def _one_thread():
    """Each chunk runs single-threaded: small tensors gain nothing from intra-op threads, and when the CPU is
    busy (training) every parallel region waits for a descheduled worker (30-600 ms instead of < 10 ms)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
