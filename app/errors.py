"""Domain errors: expected failures that the API reports as ``UserError``s.

    DomainError                 code, message, field (path to the input at fault)
    ├── NotFound                NOT_FOUND: unknown id, or another organization's
    ├── InvalidInput            INVALID_INPUT: a value fails validation
    ├── Forbidden               FORBIDDEN: the viewer's role may not do this
    ├── Conflict                CONFLICT: the change clashes with what exists (would
    │                           orphan data, take what is taken, pass a cap)
    ├── ActionNotAvailable      ACTION_NOT_AVAILABLE: action not allowed here
    └── InvalidTransition       INVALID_TRANSITION

Services raise them before changing anything, or inside a transaction that
they roll back, so a raised DomainError always means "nothing changed".
Anything that is not a DomainError is a bug: masked for the client, logged.
"""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    code = "INVALID_INPUT"

    def __init__(self, message: str, field: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field: list[str] | None = list(field) if field is not None else None

    def at(self, *prefix: str) -> DomainError:
        """The same error with its field path put under ``prefix``."""
        self.field = [*prefix, *(self.field or [])]
        return self


class NotFound(DomainError):
    code = "NOT_FOUND"

    def __init__(self, what: str, field: Sequence[str] | None = None) -> None:
        super().__init__(f"{what} not found.", field)


class InvalidInput(DomainError):
    code = "INVALID_INPUT"


class Forbidden(DomainError):
    code = "FORBIDDEN"

    def __init__(self, message: str = "Your role does not allow this.", field: Sequence[str] | None = None) -> None:
        super().__init__(message, field)


class Conflict(DomainError):
    code = "CONFLICT"


class ActionNotAvailable(DomainError):
    code = "ACTION_NOT_AVAILABLE"


class InvalidTransition(DomainError):
    code = "INVALID_TRANSITION"


class NotPullable(DomainError):
    code = "NOT_PULLABLE"
