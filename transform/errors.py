"""The project's one exception tree.

Every error the product raises derives from :class:`MigrationError`. Stages add their own
subclasses in their ``errors.py``; driver and file-system exceptions are translated at the
adapter boundary and always chained (``raise ... from exc``)::

    MigrationError                      (base; .step, .table, .hint as attributes)
    ├── ConfigError                     pipelines/config.py   — bad or unknown configuration
    ├── TransformError                  transform/            — a conversion rule cannot be applied
    │   ├── IdWindowOverflow            a type's 1e8 ID window is exhausted (never wraps)
    │   └── ConservationError           eligible != converted + quarantined + excluded
    ├── ExtractError                    extract/errors.py     — source / package / staging I/O
    │   ├── SourceNotFrozen             a write to the frozen source was not refused
    │   ├── PackageIntegrityError       checksum or row count of a package file differs
    │   └── SchemaMismatch              restored structure differs from the expected legacy schema
    ├── LoadError                       load/errors.py        — central / control-store writes
    │   └── LoadRefused                 a gate (signatures, rehearsal, coverage) refuses the load
    ├── ValidationFailed                validate/             — checks failed and policy blocks the step
    └── SignOffError                    sign_off/             — minutes cannot be built or verified

Errors are *terminal* (bad data, bad config: retrying will not help) unless marked
``transient = True`` (a dropped connection, a locked file); Prefect tasks retry only transient ones.
"""

from __future__ import annotations


class MigrationError(Exception):
    """Base of every error raised by the product.

    Args:
        message: what went wrong, naming the object.
        step: Phụ lục IV step id (e.g. ``"pl4_03_handover"``) when known.
        table: the table or file concerned, when known.
        hint: the next action for the operator (a command, a file to fix).
    """

    transient: bool = False

    def __init__(self, message: str, *, step: str | None = None, table: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.table = table
        self.hint = hint

    def attrs(self) -> dict[str, str | None]:
        return {"step": self.step, "table": self.table, "hint": self.hint}

    def __str__(self) -> str:
        parts = [self.message]
        if self.table:
            parts.append(f"[table={self.table}]")
        if self.hint:
            parts.append(f"Next: {self.hint}")
        return " ".join(parts)


class ConfigError(MigrationError):
    """Configuration is missing, malformed or names unknown keys."""


class TransformError(MigrationError):
    """A conversion rule cannot be applied to the data it was given."""


class IdWindowOverflow(TransformError):
    """A branch's 1e8-wide ID window for one type digit is exhausted."""


class ConservationError(TransformError):
    """Row accounting does not add up: eligible != converted + quarantined + excluded."""


class ValidationFailed(MigrationError):
    """Validation found failures that the configured policy says must block the step."""


class SignOffError(MigrationError):
    """The minutes cannot be built, signed or verified."""


class StepFailed(MigrationError):
    """Raised by the flow layer: wraps any failure once with the step that failed."""

    def __init__(self, step: str, cause: BaseException) -> None:
        hint = getattr(cause, "hint", None)
        super().__init__(f"Step {step} failed: {cause}", step=step, hint=None)
        self.cause = cause
        self.cause_hint = hint
