"""Domain errors raised by the gridmap core.

The API maps each class to an HTTP status in exactly one place (``api/errors.py``);
the CLI prints ``str(error)`` on stderr and exits with ``exit_code``.
"""

from __future__ import annotations


class GridmapError(Exception):
    """Base of every error the core raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, details: list[dict[str, object]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFoundError(GridmapError):
    """A named thing (area code, event id, layer…) does not exist."""

    exit_code = 3


class InvalidInputError(GridmapError):
    """Input is malformed; ``details`` say where (row, feature, field)."""

    exit_code = 2


class ConflictError(GridmapError):
    """The request clashes with current state (e.g. a disallowed transition)."""

    exit_code = 4


class SetupError(GridmapError):
    """The machine lacks something gridmap needs (PostgreSQL, PostGIS…)."""

    exit_code = 5


class DatabaseUnavailableError(GridmapError):
    """The database cannot be reached right now."""

    exit_code = 6


class OutOfRangeError(GridmapError):
    """A well-formed request names something outside its range (e.g. a tile z/x/y)."""

    exit_code = 2


class AuthenticationError(GridmapError):
    """No credentials, or credentials that are wrong, expired, revoked or disabled."""

    exit_code = 7


class PermissionDeniedError(GridmapError):
    """The caller is known but its role may not do this.

    Records outside the caller's area are *not* this error: they are ``NotFoundError``,
    so that a refusal never reveals that the record exists.
    """

    exit_code = 7
