"""The low_compute mode's pose cache (memory LRU over an on-disk store) and its background worker.

Entries are keyed by the character image's digest, a kind ('face' patches or
'body' fields) and a tuple of quantised integers; the file name spells the key
so that a restart can list what is already rendered without opening anything.
Files hold plain arrays (``np.load(allow_pickle=False)``), never pickles.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

log = logging.getLogger("greenroom.talkinghead")

Key = tuple  # (kind: str, *ints)
_NAME = re.compile(r"^(face|body)((?:_-?\d+)+)\.npz$")


def key_name(key: Key) -> str:
    return key[0] + "".join(f"_{int(v)}" for v in key[1:]) + ".npz"


def parse_key_name(name: str) -> Key | None:
    m = _NAME.fullmatch(name)
    if not m:
        return None
    return (m.group(1), *(int(v) for v in m.group(2).split("_")[1:]))


class PoseCache:
    """Tensors per (digest, key): memory first, then disk. Thread-safe."""

    def __init__(self, folder: str, memory_mb: int, disk_mb: int) -> None:
        self.folder = Path(folder).expanduser() if folder and disk_mb > 0 else None
        self.memory_limit = memory_mb * 2**20
        self.disk_limit = disk_mb * 2**20
        self._lock = threading.Lock()
        self._memory: OrderedDict[tuple[str, Key], dict[str, torch.Tensor]] = OrderedDict()
        self._memory_bytes = 0
        self._on_disk: dict[str, set[Key]] = {}
        self._known: dict[str, set[Key]] = {}   # every key available per character (memory or disk)
        self._versions: dict[str, int] = {}     # bumped whenever that set changes
        self._sources: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self.hits = self.misses = self.disk_reads = 0

    def source(self, character: Any) -> Any:
        """One live Character per image for the background jobs: queued jobs then pin one copy per
        image instead of one per instance (deleted instances' copies stayed in the queue, ~5 MB each)."""
        with self._lock:
            return self._sources.setdefault(character.digest, character)

    def _dir(self, digest: str) -> Path | None:
        if self.folder is None or not re.fullmatch(r"[0-9a-f]{8,64}", digest):
            return None
        return self.folder / digest

    def keys(self, digest: str) -> tuple[int, set[Key]]:
        """(version, every key available for this character in memory or on disk)."""
        with self._lock:
            if digest not in self._known:
                self._on_disk[digest] = self._scan(digest)
                self._known[digest] = set(self._on_disk[digest])
                self._versions[digest] = self._versions.get(digest, 0) + 1
            return self._versions[digest], set(self._known[digest])

    def version(self, digest: str) -> int:
        return self._versions.get(digest, 0)

    def has(self, digest: str, key: Key) -> bool:
        with self._lock:
            return key in self._known.get(digest, ())

    def _changed(self, digest: str, key: Key, present: bool) -> None:
        known = self._known.setdefault(digest, set())
        if present:
            known.add(key)
        else:
            known.discard(key)
        self._versions[digest] = self._versions.get(digest, 0) + 1

    def _scan(self, digest: str) -> set[Key]:
        folder = self._dir(digest)
        if folder is None or not folder.is_dir():
            return set()
        return {k for k in (parse_key_name(f.name) for f in folder.iterdir()) if k is not None}

    def get(self, digest: str, key: Key) -> dict[str, torch.Tensor] | None:
        with self._lock:
            item = self._memory.get((digest, key))
            if item is not None:
                self._memory.move_to_end((digest, key))
                self.hits += 1
                return item
            on_disk = key in self._on_disk.get(digest, ())
        if not on_disk:
            self.misses += 1
            return None
        item = self._read(digest, key)
        if item is not None:
            self._remember(digest, key, item)
        return item

    def put(self, digest: str, key: Key, item: dict[str, torch.Tensor]) -> None:
        self._remember(digest, key, item)
        self._write(digest, key, item)

    def _remember(self, digest: str, key: Key, item: dict[str, torch.Tensor]) -> None:
        size = sum(t.numel() * t.element_size() for t in item.values())
        with self._lock:
            old = self._memory.pop((digest, key), None)
            if old is not None:
                self._memory_bytes -= sum(t.numel() * t.element_size() for t in old.values())
            self._memory[(digest, key)] = item
            self._memory_bytes += size
            if key not in self._known.get(digest, ()):
                self._changed(digest, key, True)
            while self._memory_bytes > self.memory_limit and len(self._memory) > 1:
                (d, k), dropped = self._memory.popitem(last=False)
                self._memory_bytes -= sum(t.numel() * t.element_size() for t in dropped.values())
                if k not in self._on_disk.get(d, ()):
                    self._changed(d, k, False)  # gone for good: it will be rendered again when needed

    def _read(self, digest: str, key: Key) -> dict[str, torch.Tensor] | None:
        folder = self._dir(digest)
        try:
            with np.load(folder / key_name(key), allow_pickle=False) as data:  # type: ignore[operator]
                item = {name: torch.from_numpy(data[name].astype(np.float32)) for name in data.files}
            self.disk_reads += 1
            return item
        except Exception as exc:  # a damaged file is dropped, then rendered again
            log.warning("pose cache file %s unreadable (%s); it will be rendered again", key_name(key), exc)
            with self._lock:
                self._on_disk.get(digest, set()).discard(key)
                self._changed(digest, key, False)
            return None

    def _write(self, digest: str, key: Key, item: dict[str, torch.Tensor]) -> None:
        folder = self._dir(digest)
        if folder is None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / (key_name(key) + f".{os.getpid()}.{threading.get_ident()}.tmp")
            with open(tmp, "wb") as f:
                np.savez(f, **{k: v.numpy().astype(np.float16) for k, v in item.items()})
            os.replace(tmp, folder / key_name(key))
            with self._lock:
                self._on_disk.setdefault(digest, set()).add(key)
            self._trim_disk()
        except OSError as exc:
            log.warning("pose cache not written (%s)", exc)

    def _trim_disk(self) -> None:
        """Delete the oldest files beyond the disk budget (checked now and then, not on every write)."""
        if self.folder is None or self.disk_limit <= 0 or np.random.random() > 0.05:
            return
        files = sorted(self.folder.glob("*/*.npz"), key=lambda f: f.stat().st_mtime)
        total = sum(f.stat().st_size for f in files)
        for f in files:
            if total <= self.disk_limit:
                break
            total -= f.stat().st_size
            f.unlink(missing_ok=True)
            key = parse_key_name(f.name)
            with self._lock:
                self._on_disk.get(f.parent.name, set()).discard(key)
                if (f.parent.name, key) not in self._memory:
                    self._changed(f.parent.name, key, False)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"memory_mb": round(self._memory_bytes / 2**20, 1), "memory_entries": len(self._memory),
                    "hits": self.hits, "misses": self.misses, "disk_reads": self.disk_reads,
                    "disk_dir": str(self.folder) if self.folder else None}


class PoseWorker:
    """One low-priority background thread that renders cache entries, most urgent first.

    It runs with one torch thread at a raised nice value, so the live feeds (which only blend cached
    results) keep the CPU they need while the cache fills. Jobs of priority ``idle_from`` and below (other
    emotions, new sway poses) run in Linux's SCHED_IDLE class: only in the CPU time the feeds leave. On two
    cores a nice'd job still took a third of a core from a talking avatar, which then missed a frame in
    five. ``idle`` runs every job that way.
    """

    def __init__(self, nice: int = 5, idle: bool = False, idle_from: int = 3) -> None:
        self._heap: list[tuple[int, int, Key, Callable[[], None]]] = []
        self._queued: dict[Key, int] = {}
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._stop = False
        self._nice, self._idle_from = nice, 0 if idle else idle_from
        self._in_idle = False
        self.busy_seconds = 0.0
        self.cpu_seconds = 0.0  # CPU time of this thread (its jobs run here, with one torch thread)
        self.jobs_done = 0
        self._thread = threading.Thread(target=self._run, name="talkinghead-pose-worker", daemon=True)
        self._thread.start()

    def submit(self, key: Key, priority: int, job: Callable[[], None]) -> None:
        """Queue ``job`` under ``key`` unless it is already queued at the same or a higher priority."""
        with self._cond:
            if key in self._queued and self._queued[key] <= priority:
                return
            self._queued[key] = priority
            heapq.heappush(self._heap, (priority, next(self._seq), key, job))
            self._cond.notify()

    def pending(self, prefix: Any = None) -> int:
        with self._cond:
            return sum(1 for k in self._queued if prefix is None or k[0] == prefix)

    def is_queued(self, key: Key) -> bool:
        with self._cond:
            return key in self._queued

    def cancel(self, prefix: Any) -> None:
        """Forget every queued job whose key starts with ``prefix`` (a closed instance's character)."""
        with self._cond:
            self._heap = [item for item in self._heap if item[2][0] != prefix]
            heapq.heapify(self._heap)
            for key in [k for k in self._queued if k[0] == prefix]:
                del self._queued[key]

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
        except OSError:
            log.warning("background renderer: nice %s not applied", self._nice)
        torch.set_num_threads(1)
        while True:
            with self._cond:
                while not self._heap and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                priority, _, key, job = heapq.heappop(self._heap)
                if self._queued.get(key) != priority:
                    continue  # superseded by a more urgent copy, or cancelled
                del self._queued[key]
            self._schedule_idle(priority >= self._idle_from)
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                job()
            except Exception as exc:
                if self._stop:
                    return
                log.exception("background pose job %s failed: %s", key[1:2], exc)
            self.busy_seconds += time.perf_counter() - t0
            self.cpu_seconds += time.thread_time() - c0
            self.jobs_done += 1

    def _schedule_idle(self, idle: bool) -> None:
        """Move this thread into (or out of) the SCHED_IDLE class. An unprivileged process may not leave
        it (RLIMIT_NICE): the worker then stays idle, which delays the cache but never the feeds."""
        if idle == self._in_idle or not hasattr(os, "SCHED_IDLE"):
            return
        try:  # pid 0: this thread
            os.sched_setscheduler(0, os.SCHED_IDLE if idle else os.SCHED_OTHER, os.sched_param(0))
            self._in_idle = idle
        except OSError as exc:
            log.warning("background renderer: scheduling class %s not applied (%s); it stays %s",
                        "SCHED_IDLE" if idle else "SCHED_OTHER", exc, "idle" if self._in_idle else "nice'd")
            self._idle_from = 0 if self._in_idle else 10**9  # stop trying

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._heap.clear()
            self._queued.clear()
            self._cond.notify_all()
        # Wait for the job in progress: a thread left inside torch at interpreter exit aborts the process.
        self._thread.join(timeout=120)
