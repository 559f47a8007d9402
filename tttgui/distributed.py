"""`tttgui eval` over several processes and machines with torch.distributed, started by torchrun (or any
launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT): no service of its own.

Each episodic cell is split into one contiguous block of images per rank; an online cell is a sequential stream,
so whole cells go round-robin to the ranks. Episodic images are seeded per image (tttgui.cell), so a rank gives
the rows a single process would. The ranks send their finished parts through the launcher's key-value store;
rank 0 alone writes: each cell goes to OUT/cells/ once all its parts are in, as in a single process, so a rank
that dies loses only the cells in flight, and `--resume` continues. Progress is a counter in the same store,
shown by rank 0's bar. The process group (gloo on CPU, NCCL on GPU) tells the ranks which cells are finished.
"""
from __future__ import annotations

import atexit
import os
import pickle
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from tttgui.errors import UserError, first_line
from tttgui.store import CellStore

HEARTBEAT_TIMEOUT = 120.0   # seconds without a heartbeat before rank 0 gives a rank up (a kill -9, a lost node)
POLL = 0.2


class RankFailed(Exception):
    """Another rank died or stopped: the run ends with the finished cells kept (one line, no traceback). quiet:
    rank 0 speaks for the run, this rank says nothing."""

    def __init__(self, message: str, quiet: bool = False):
        super().__init__(message)
        self.quiet = quiet


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, env=None) -> "World":
        env = os.environ if env is None else env
        try:
            return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
        except ValueError:
            raise UserError("RANK, WORLD_SIZE or LOCAL_RANK is not an integer; expected them as torchrun sets "
                            "them") from None

    def device(self, choice: str) -> torch.device:
        """cuda:LOCAL_RANK when CUDA is there and the choice allows it (one GPU per rank), else the choice."""
        from tttgui.device import resolve_device

        if (choice or "auto").lower() in ("auto", "cuda") and torch.cuda.is_available():
            if self.local_rank >= torch.cuda.device_count():
                raise UserError(f"rank {self.rank} has LOCAL_RANK {self.local_rank} but this machine has "
                                f"{torch.cuda.device_count()} CUDA device(s); expected --nproc_per_node at most "
                                "that")
            return torch.device("cuda", self.local_rank)
        return resolve_device(choice)


def plan(keys, episodic: bool, n: int, size: int) -> dict:
    """key -> [(rank, start, stop)]: the parts of each cell, positions into the cell's image order."""
    parts, turn = {}, 0
    for key in keys:
        if episodic:
            bounds = np.linspace(0, n, size + 1).round().astype(int)
            parts[key] = [(r, int(a), int(b)) for r, (a, b) in enumerate(zip(bounds, bounds[1:])) if b > a]
        else:
            parts[key] = [(turn % size, 0, n)]
            turn += 1
    return parts


_joined: dict = {}


def join(world: World, device: torch.device):
    """torch.distributed and the launcher's store, joined once per process (gloo on CPU, NCCL on GPU)."""
    import torch.distributed as dist

    if not _joined:
        try:
            store, _, _ = next(dist.rendezvous("env://", world.rank, world.size))
        except (RuntimeError, ValueError) as exc:   # no MASTER_ADDR, a peer that never came, ...
            raise UserError(f"rank {world.rank} cannot join the other ranks ({first_line(exc)}); "
                            "expected a torchrun launch") from None
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=dist.PrefixStore("pg", store),
                                rank=world.rank, world_size=world.size)
        atexit.register(dist.destroy_process_group)
        _joined["store"] = store
    return dist, _joined["store"]


class Serial:
    """A store whose calls take turns: its client is one socket, which the main, heartbeat and watcher threads
    share. Re-entrant, as the SIGTERM handler may read in the middle of the main thread's call."""
    lock = threading.RLock()

    def __init__(self, store):
        self.store = store

    def __getattr__(self, name):
        op = getattr(self.store, name)

        def call(*args):
            with Serial.lock:
                return op(*args)
        return call


def _name(key) -> str:
    return "-".join(str(k) for k in key)


class ShardedStore(CellStore):
    """A CellStore shared by the ranks of a torchrun job (only rank 0 touches the folder)."""

    def __init__(self, out_dir, world: World, device: torch.device, keys, episodic: bool, n: int, name: str = ""):
        super().__init__(out_dir)
        self.world, self.keys, self.episodic, self.n = world, list(keys), episodic, n
        self.dist, store = join(world, device)
        self.kv = Serial(self.dist.PrefixStore(f"tttgui/{name}/", store))   # name: one prefix per store
        self.done: set = set()
        self.parts: dict = {}
        self.written: set = set()
        self.reason: str | None = None
        self._stop_checked = 0.0
        self._shown, self._finished = 0, False
        self._lock = threading.RLock()   # the watcher and the main thread (at the end, on SIGTERM) both flush

    # -- the CellStore interface the engine uses ---------------------------------------------------------------
    def start(self, fingerprint: dict, resume: bool) -> int:
        """Rank 0 opens the folder; every rank learns from it which cells are finished (or its one-line error)."""
        msg = [None]
        if self.world.rank == 0:
            try:
                super().start(fingerprint, resume)
                msg = [[k for k in self.keys if self.path(k).is_file()]]
            except UserError as exc:
                msg = [exc]
        self.dist.broadcast_object_list(msg, src=0, device=self._object_device())
        if isinstance(msg[0], UserError):   # rank 0 says it; the others leave without repeating it
            if self.world.rank == 0:
                raise msg[0]
            raise SystemExit(2)
        self.done = {tuple(k) for k in msg[0]}
        self.parts = plan([k for k in self.keys if k not in self.done], self.episodic, self.n, self.world.size)
        return len(self.done)

    def load(self, key):
        """During the run, cells finished before it: rank 0 reads them back, the others skip them (a cell the
        watcher writes meanwhile is not one: each rank has run its part). After it, rank 0 reads every cell."""
        if self.world.rank == 0 and (self._finished or tuple(key) in self.done):
            return super().load(key)
        return [] if tuple(key) in self.done else None

    def share(self, key, order):
        for r, a, b in self.parts.get(tuple(key), ()):
            if r == self.world.rank:
                return order[a:b]
        return order[:0]

    def save(self, key, rows) -> None:
        self._kv(self.kv.set, f"part/{_name(key)}/{self.world.rank}", pickle.dumps(rows))

    # -- the run -------------------------------------------------------------------------------------------------
    def evaluate(self, model, stats, images, labels, indices, cfg, device, progress=None, store=None, **kwargs):
        """tttgui.evaluation.evaluate on this rank's parts. Rank 0 returns the merged result of every rank; the
        others return None. Raises RankFailed when a rank died or stopped. store: this one (the engine's
        signature)."""
        from tttgui.evaluation import collect, evaluate

        threading.Thread(target=self._beat, daemon=True).start()
        main, old = self.world.rank == 0, None
        if main:
            threading.Thread(target=self._watch, args=(progress,), daemon=True).start()
            # torchrun ends the other ranks with SIGTERM when one dies: end as a stopped run, not a killed one
            old = signal.signal(signal.SIGTERM, self._terminated)
        t0 = time.perf_counter()
        try:
            result = evaluate(model, stats, images, labels, indices, cfg, device,
                              progress=lambda k, _text: self._kv(self.kv.add, "progress", k),
                              should_stop=self._should_stop, store=self, **kwargs)
            if not main:
                self._kv(self.kv.add, f"done/{self.world.rank}", 1)
                if result.cancelled:
                    raise RankFailed(self.reason or f"rank {self.world.rank} stopped", quiet=True)
                return None
            while self.reason is None and len(self.written) < len(self.parts):   # the other ranks' last parts
                time.sleep(POLL)
            self._flush()
            if self.reason is not None:
                raise RankFailed(self.reason)
            self._finished = True   # the bar's last count, then the watcher ends
            self._report(progress)
        except (RankFailed, KeyboardInterrupt):
            if main:
                self._flush()
            raise
        except Exception as exc:   # tell rank 0 why before dying, so its line names the cause
            self._kv(self.kv.set, "failed", f"rank {self.world.rank} failed: {exc.__class__.__name__}: {exc}",
                     quiet=True)
            raise
        finally:
            self._finished = True
            if old is not None:
                signal.signal(signal.SIGTERM, old)
        merged = collect(self, cfg)
        merged.seconds = time.perf_counter() - t0
        merged.cancelled = False
        return merged

    def _object_device(self):
        return torch.device("cuda", torch.cuda.current_device()) if self.dist.get_backend() == "nccl" else None

    def _kv(self, op, *args, quiet: bool = False):
        try:
            return op(*args)
        except Exception as exc:   # the store's host (rank 0 or torchrun) is gone
            if quiet:
                return None
            raise RankFailed(f"rank {self.world.rank} lost the other ranks ({first_line(exc, 80)})") \
                from None

    def _should_stop(self) -> bool:
        if self.reason is not None:
            return True
        now = time.monotonic()
        if now - self._stop_checked > 0.5:   # one round trip to the store per half second at most
            self._stop_checked = now
            if self._kv(self.kv.check, ["stop"]):
                self.reason = self.reason or "stopped by rank 0"   # rank 0 tells the reason
        return self.reason is not None

    def _beat(self) -> None:
        while not self._finished:
            if self._kv(self.kv.add, f"beat/{self.world.rank}", 1, quiet=True) is None:
                return
            time.sleep(1.0)

    def _watch(self, progress) -> None:
        """Rank 0: progress, cells whose parts are all in, and ranks that died."""
        seen = {r: (-1, time.monotonic()) for r in range(1, self.world.size)}
        while self.reason is None and not self._finished:
            try:
                self._report(progress)
                self._flush()
                self.reason = self._failure(seen)
            except Exception as exc:
                self.reason = f"rank 0 lost the other ranks ({first_line(exc, 80)})"
            if self.reason is not None:
                self._kv(self.kv.set, "stop", "1", quiet=True)
                return
            time.sleep(POLL)

    def _report(self, progress) -> None:
        with self._lock:
            count = self.kv.add("progress", 0)
            if progress and count > self._shown:
                progress(count - self._shown, f"{self.world.size} ranks")
                self._shown = count

    def _failure(self, seen: dict) -> str | None:
        if self.kv.check(["failed"]):
            return self.kv.get("failed").decode("utf-8", "replace")
        now = time.monotonic()
        for r, (beats, since) in seen.items():
            if self.kv.check([f"done/{r}"]):
                continue
            count = self.kv.add(f"beat/{r}", 0)
            if count != beats:
                seen[r] = (count, now)
            elif now - since > HEARTBEAT_TIMEOUT:
                return f"rank {r} stopped answering ({HEARTBEAT_TIMEOUT:.0f} s without a heartbeat)"
        return None

    def _flush(self) -> None:
        """Write every cell whose parts are all in, in rank order (= the single process's image order)."""
        with self._lock:
            self._flush_ready()

    def _flush_ready(self) -> None:
        for key, parts in self.parts.items():
            if key in self.written:
                continue
            names = [f"part/{_name(key)}/{r}" for r, _, _ in parts]
            try:
                if not self.kv.check(names):
                    continue
                rows = [row for name in names for row in pickle.loads(self.kv.get(name))]
            except Exception:   # the store is gone: what is written stays written
                return
            CellStore.save(self, key, rows)
            self.written.add(key)

    def _terminated(self, *_):
        # no flush here (the main thread may be inside a store call): evaluate's except clause flushes
        raise RankFailed(self._read_failure() or "stopped by torchrun: another rank exited")

    def _read_failure(self) -> str | None:
        if not Serial.lock.acquire(timeout=1):   # held by a thread waiting for this one: no reason to read
            return None
        try:
            return self.kv.get("failed").decode("utf-8", "replace") if self.kv.check(["failed"]) else None
        except Exception:
            return None
        finally:
            Serial.lock.release()


def open_store(out_dir, world: World, device, cfg, n: int, name: str = "") -> CellStore:
    """The cell store of a run: a plain one in one process, a ShardedStore under torchrun (name: one per store
    a process opens)."""
    from tttgui.evaluation import shifts
    from tttgui.methods import get_method

    if world.size == 1:
        return CellStore(out_dir)
    if cfg.protocol == "continual":
        raise UserError("--protocol continual is one stream per method across the corruptions, which ranks "
                        "cannot split; expected it in one process (without torchrun)")
    keys = [(c, s, get_method(m).name) for c, s in shifts(cfg) for m in cfg.methods]
    return ShardedStore(out_dir, world, device, keys, cfg.protocol == "episodic", n, name)
