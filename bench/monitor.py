"""Peak resident memory of a whole process tree (the CLI, its Prefect server, any tool it starts),
sampled in a background thread; samples are kept so that peaks can be cut per step afterwards."""

from __future__ import annotations

import threading
import time

import psutil


class TreeRSS:
    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.root = psutil.Process(pid)
        self.every = every
        self.samples: list[tuple[float, int]] = []  # (unix time, bytes summed over the tree)
        self.main: list[int] = []  # the root process alone (the flow and its tasks run in it)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _tree_rss(self) -> int:
        total = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self._tree_rss()))
            try:
                self.main.append(self.root.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> TreeRSS:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    def peak(self, start: float | None = None, end: float | None = None) -> int:
        vals = [r for t, r in self.samples if (start is None or t >= start) and (end is None or t <= end)]
        return max(vals, default=0)
