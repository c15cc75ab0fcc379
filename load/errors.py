"""Errors of the load stage (central database, control store)."""

from __future__ import annotations

from transform.errors import MigrationError


class LoadError(MigrationError):
    """Writing to central or to the control store failed."""


class CentralUnavailable(LoadError):
    """Central cannot be reached right now (transient)."""

    transient = True


class LoadRefused(LoadError):
    """A gate refuses the load (unsigned minutes outside rehearsal, uncovered office codes...)."""
