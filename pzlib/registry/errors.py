"""Domain exceptions of the PZ Server registry.

Every failure the registry reports to a caller is one of these classes, so an HTTP layer maps them to status
codes without reading messages: ``NotFound`` → 404, ``PermissionDenied`` → 403, ``AuthenticationFailed`` →
401, ``InvalidInput`` → 400 (its subclasses ``AlreadyExists`` → 409 and ``MissingColumns`` → 406, as LIneA's
PZ Server answers a publish with unfilled mandatory columns). Messages are written for the end user: they name
the thing, the value and what to do.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of every registry error."""


class NotFound(RegistryError):
    """The record does not exist, or the acting user may not see it."""


class PermissionDenied(RegistryError):
    """The acting user sees the record but may not do this to it."""


class AuthenticationFailed(RegistryError):
    """An API token is unknown or revoked."""


class InvalidInput(RegistryError, ValueError):
    """A value given by the caller is malformed or breaks a domain rule."""


class AlreadyExists(InvalidInput):
    """A record with the same unique name already exists."""


class MissingColumns(InvalidInput):
    """A product cannot be published because mandatory columns are not associated."""

    def __init__(self, message: str, missing: tuple[str, ...]):
        super().__init__(message)
        self.missing = missing
        """Aliases of the mandatory columns that no column of the product carries."""
