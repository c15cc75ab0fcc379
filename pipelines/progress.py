"""A tiny progress seam: the CLI installs a sink (rich progress bars); flows and tests run without one."""

from __future__ import annotations

from collections.abc import Callable

ProgressSink = Callable[[str, str, int, int | None], None]  # step, label, rows done (delta), total
_sink: ProgressSink | None = None


def set_sink(sink: ProgressSink | None) -> None:
    global _sink
    _sink = sink


def report(step: str, label: str, rows: int, total: int | None = None) -> None:
    if _sink is not None:
        _sink(step, label, rows, total)
