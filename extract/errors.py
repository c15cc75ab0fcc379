"""Errors of the extract stage (sources, packages, staging). See transform/errors.py for the tree."""

from __future__ import annotations

from transform.errors import MigrationError


class ExtractError(MigrationError):
    """Reading a source, a package or staging failed."""


class SourceUnavailable(ExtractError):
    """The source database cannot be reached right now (transient)."""

    transient = True


class SourceNotFrozen(ExtractError):
    """The freeze proof failed: a write to the source was accepted."""


class PackageIntegrityError(ExtractError):
    """A file of the backup package does not match its manifest (checksum or rows)."""


class SchemaMismatch(ExtractError):
    """The restored structure differs from the expected legacy schema."""
