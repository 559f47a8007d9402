"""The worker thread: one long-lived QObject on a QThread owns the model and the Session.

Commands arrive as queued signals; step records go into a RecordBuffer that the GUI pulls from on a timer, so a
fast GPU cannot flood the event queue. Stop and pause are threading.Events checked between steps, because the
worker's own event loop is blocked while a run is going.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from tttgui.gui import engine
from tttgui.gui.errors import one_line


class RecordBuffer:
    """Thread-safe list of the current episode's StepRecords (step 0 first), tagged with the episode id."""

    def __init__(self):
        self._lock = threading.Lock()
        self._episode = -1
        self._records: list = []
        self._version = 0

    def begin(self, episode: int, first) -> None:
        with self._lock:
            self._episode, self._records = episode, [first]
            self._version += 1

    def append(self, record) -> None:
        with self._lock:
            self._records.append(record)
            self._version += 1

    def snapshot(self) -> tuple[int, int, tuple]:
        """(version, episode, records); records are immutable, so sharing the tuple is safe."""
        with self._lock:
            return self._version, self._episode, tuple(self._records)


class SessionWorker(QObject):
    model_ready = Signal(object)          # dict: path, classes, source_stats (numpy), meta, device
    load_failed = Signal(str, str)        # path, one line: the model loaded before stays in use
    shifted_ready = Signal(int, object)   # episode id, the corrupted image (uint8 HWC), made on this thread
    image_failed = Signal(int, str)       # episode id, one line: the episode has no image
    session_failed = Signal(int, str)     # episode id, one line: the image is fine, no session starts on it
    image_ready = Signal(int)             # episode id; step 0 is in the buffer
    views_ready = Signal(int, str, object)   # episode id, what the views are, uint8 NHWC (None: there are none)
    # episode, "done" | "stopped" | "paused" | record status, steps done, the episode's records (step 0 first): the
    # buffer may already hold the next episode when the GUI reads this (a switch of image stops the run and sends
    # the new one at once), and the stopped run must still reach History
    run_finished = Signal(int, str, int, object)
    failed = Signal(str)                  # one line for the status bar and a dialog
    batch_progress = Signal(int, int)     # images done, total
    batch_done = Signal(object)           # tttgui.gui.batch_input.BatchRun (None: the batch failed)

    def __init__(self, buffer: RecordBuffer, stop: threading.Event, pause: threading.Event,
                 session_factory=None):
        super().__init__()
        self.buffer, self.stop_event, self.pause_event = buffer, stop, pause
        self.session_factory = session_factory or engine.make_session
        self.batch_cancel = threading.Event()
        self.model = self.source_stats = self.device = self.session = self.config = None
        self.image = self.label = None
        self.episode = -1

    @Slot(str, str)
    def load_model(self, path: str, device: str) -> None:
        try:
            import torch

            from tttgui.device import resolve_device
            from tttgui.models import load_checkpoint
            from tttgui.models.checkpoint import require_classifier

            dev = resolve_device(device)
            model, payload = load_checkpoint(path, dev)
            require_classifier(payload, path)
            if dev.type == "cuda":  # create the CUDA context here, not on the GUI thread
                torch.zeros(1, device=dev).sum().item()
            self._drop_session()
            self.model, self.source_stats, self.device = model, payload.get("source_stats") or {}, dev
            from tttgui.methods import display_name, get_method, method_names
            self.model_ready.emit({"path": path, "classes": list(payload["classes"]),
                                   "method_names": {m: display_name(m, model) for m in method_names()},
                                   "unusable": {m: why for m in method_names()
                                                if (why := get_method(m).unusable(model))},
                                   "meta": dict(payload.get("meta") or {}), "device": _device_text(dev),
                                   "source_norm": _numpy_norm(self.source_stats),
                                   "arch": model.spec.arch})
        except BaseException as exc:  # noqa: BLE001 - the worker must survive anything a command throws
            self.load_failed.emit(path, one_line(exc, f"cannot load checkpoint {path}"))

    @Slot(object, str, int, object, object, object, int)
    def set_image(self, clean, corruption, severity, label, index, config, episode: int) -> None:
        """Corrupt the clean image here (a zoom blur takes 200 ms: never on the GUI thread), then start the
        episode on it."""
        try:
            image = np.array(engine.apply_corruption(clean, corruption, severity, seed=config.seed), np.uint8)
        except BaseException as exc:  # noqa: BLE001
            self.image_failed.emit(episode, one_line(exc, f"corruption {corruption} failed"))
            return
        self.shifted_ready.emit(episode, image.copy())
        try:
            if self.model is None:
                raise RuntimeError("no model loaded; open a checkpoint first")
            if self.session is None or config != self.config:
                self._drop_session()
                self.session = self.session_factory(self.model, self.source_stats, config, self.device)
                self.config = config
            self.image, self.label, self.episode = image, label, episode
            first = self.session.set_image(image, label, index)
            self.buffer.begin(episode, first)
            self.image_ready.emit(episode)
            self._emit_views(self.session.adapter.gen.get_state(), "the next step will use")
        except BaseException as exc:  # noqa: BLE001
            self.session_failed.emit(episode, one_line(exc, "cannot start a session on this image"))

    @Slot(int)
    def run(self, n: int) -> None:
        done, status, used = 0, "done", None
        try:
            if self.session is None:
                raise RuntimeError("no image set; pick an image first")
            gen = self.session.adapter.gen
            state = gen.get_state()       # a step draws its views first: this state gives the same draw
            for record in self.session.run(n, should_stop=self._should_stop):
                used, state = state, gen.get_state()
                self.buffer.append(record)
                done += 1
                if record.status not in ("ok", "", None):
                    status = str(record.status)
                    break
            if status == "done" and done < n:
                status = "paused" if self.pause_event.is_set() else "stopped"
            if used is not None:
                self._emit_views(used, f"step {record.step} used")
        except BaseException as exc:  # noqa: BLE001
            self.failed.emit(one_line(exc, "the adaptation step failed"))
            status = "failed"
        _, episode, records = self.buffer.snapshot()
        self.run_finished.emit(self.episode, status, done, records if episode == self.episode else ())

    @Slot()
    def reset(self) -> None:
        try:
            if self.session is None:
                return
            self.session.reset()   # the GUI then sends the image again as a new episode
        except BaseException as exc:  # noqa: BLE001
            self.failed.emit(one_line(exc, "reset failed"))

    def _emit_views(self, gen_state, when: str, k: int = 16) -> None:
        """The views a step draws from this generator state (replayed on a copy: the run is not touched)."""
        try:
            import torch

            from tttgui.session import prepare_image

            method = self.session.adapter.method
            if not method.adapts:
                self.views_ready.emit(self.episode, "Views: none (this method does not adapt)", None)
                return
            gen = torch.Generator()
            gen.set_state(gen_state)
            x = prepare_image(self.image, self.model.spec.input_size).to(self.device)
            with torch.no_grad():
                v = method.display_views(method.draw(x, gen)).clamp(0, 1)
            shown = (v[:k].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).cpu().numpy().copy()
            self.views_ready.emit(self.episode, f"Views {when} ({len(shown)} of {len(v)} shown)", shown)
        except BaseException as exc:  # noqa: BLE001 - views are a preview; report and carry on
            self.failed.emit(one_line(exc, "cannot draw the augmented views"))

    @Slot(object, object, object)
    def evaluate(self, dataset, indices, cfg) -> None:
        """Batch evaluation through the same engine as `tttgui eval`, on this thread's model; unreadable images
        are skipped and listed (tttgui.gui.batch_input)."""
        try:
            from tttgui.evaluation import EvalResult, evaluate, shifts
            from tttgui.gui.batch_input import BatchRun, prepare

            if self.model is None:
                raise RuntimeError("no model loaded; open a checkpoint first")
            job = prepare(dataset, indices, cfg, self.batch_cancel.is_set)
            total = len(job.indices) * len(cfg.methods) * len(shifts(cfg))
            done = [0]

            def progress(k, _text=""):
                done[0] += k
                self.batch_progress.emit(done[0], total)

            if len(job.indices) == 0 and not self.batch_cancel.is_set():
                raise RuntimeError(f"none of the {len(indices)} images could be read"
                                   + (f" (first: {job.skipped[0][1]})" if job.skipped else ""))
            if len(job.indices) == 0:    # cancelled while reading
                result = EvalResult(cancelled=True)
            else:
                result = evaluate(self.model, self.source_stats, job.images, job.labels, job.indices, cfg,
                                  self.device, progress=progress, should_stop=self.batch_cancel.is_set,
                                  shifted=job.shifted)
            result.cancelled = bool(result.cancelled or self.batch_cancel.is_set())
            self.batch_done.emit(BatchRun(result, job.skipped, len(job.indices), result.cancelled))
        except BaseException as exc:  # noqa: BLE001
            self.failed.emit(one_line(exc, "batch evaluation failed"))
            self.batch_done.emit(None)

    def _should_stop(self) -> bool:
        return self.stop_event.is_set() or self.pause_event.is_set()

    def _drop_session(self) -> None:
        # Restore the weights before the session goes, so a new one starts from the checkpoint.
        if self.session is not None:
            try:
                self.session.reset()
            finally:
                self.session = None


class WorkerController(QObject):
    """GUI-side handle: owns the QThread and the worker, sends commands, exposes the buffer and events."""

    _load = Signal(str, str)
    _set_image = Signal(object, str, int, object, object, object, int)
    _run = Signal(int)
    _reset = Signal()
    _evaluate = Signal(object, object, object)
    busy_changed = Signal()      # a batch evaluation started or ended (Step and Run wait for it)

    def __init__(self, session_factory=None, parent=None):
        super().__init__(parent)
        self.buffer = RecordBuffer()
        self.stop_event, self.pause_event = threading.Event(), threading.Event()
        self.thread = QThread()
        self.thread.setObjectName("tttgui-worker")
        self.worker = SessionWorker(self.buffer, self.stop_event, self.pause_event, session_factory)
        self.worker.moveToThread(self.thread)
        self._load.connect(self.worker.load_model)
        self._set_image.connect(self.worker.set_image)
        self._run.connect(self.worker.run)
        self._reset.connect(self.worker.reset)
        self._evaluate.connect(self.worker.evaluate)
        self.batch_running = False
        self.worker.batch_done.connect(self._batch_ended)
        self.thread.start()

    def load_model(self, path: str, device: str = "auto") -> None:
        self._load.emit(str(path), device)

    def set_image(self, clean, corruption: str, severity: int, label, index, config, episode: int) -> None:
        self._set_image.emit(clean, corruption, int(severity), label, index, config, episode)

    def run(self, n: int) -> None:
        self.stop_event.clear()
        self.pause_event.clear()
        self._run.emit(int(n))

    def stop(self) -> None:
        self.stop_event.set()

    def pause(self) -> None:
        self.pause_event.set()

    def reset(self) -> None:
        self._reset.emit()

    def evaluate(self, dataset, indices, cfg) -> None:
        self.worker.batch_cancel.clear()
        self.batch_running = True
        self.busy_changed.emit()
        self._evaluate.emit(dataset, list(indices), cfg)

    @Slot(object)
    def _batch_ended(self, _result) -> None:
        self.batch_running = False
        self.busy_changed.emit()

    def cancel_batch(self) -> None:
        self.worker.batch_cancel.set()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop any run, end the thread's event loop, wait at most timeout_ms. True when the thread ended."""
        self.stop_event.set()
        self.worker.batch_cancel.set()
        self.thread.quit()
        start = time.perf_counter()
        ok = self.thread.wait(timeout_ms)
        self.shutdown_seconds = time.perf_counter() - start
        return bool(ok)


def _device_text(dev) -> str:
    import torch

    if dev.type == "cuda":
        return f"CUDA · {torch.cuda.get_device_name(dev)}"
    n = torch.get_num_threads()
    return f"CPU · {n} thread{'s' if n != 1 else ''}"


def _numpy_norm(source_stats: dict) -> dict:
    """Per-layer source channel mean/var as numpy copies (the GUI never sees live tensors)."""
    out = {}
    for name, st in (source_stats or {}).get("norm", {}).items():
        out[name] = {k: np.array(st[k].detach().cpu().numpy(), copy=True) for k in ("mean", "var") if k in st}
    return out
