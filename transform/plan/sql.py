"""Small SQL fragments the plans share (over the source row ``s``; ``py_strip`` is Python's ``str.strip``)."""

from __future__ import annotations


def blank(col: str) -> str:
    """The rules' ``blank``: NULL, or nothing but spaces."""
    return f"coalesce(py_strip(s.{col}), '') = ''"


def in_list(values: frozenset[str]) -> str:
    """A quoted SQL list of ``values`` (never empty: the config requires at least one office)."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values)) or "NULL"
