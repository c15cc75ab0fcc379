"""A tiny progress seam: the CLI installs a sink (rich progress bars) and a notice sink (a run waiting at a gate
or resumed); flows and tests run without them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressSink = Callable[[str, str, int, int | None], None]  # step, label, rows done (delta), total
NoticeSink = Callable[[str, dict[str, Any]], None]  # event ("waiting", "resumed"), what the operator needs
_sink: ProgressSink | None = None
_notice: NoticeSink | None = None


def set_sink(sink: ProgressSink | None, notice: NoticeSink | None = None) -> None:
    global _sink, _notice
    _sink, _notice = sink, notice


def report(step: str, label: str, rows: int, total: int | None = None) -> None:
    if _sink is not None:
        _sink(step, label, rows, total)


def notify(event: str, **info: Any) -> None:
    if _notice is not None:
        _notice(event, info)
