"""Domain errors: expected failures that the API reports as ``UserError``s.

    DomainError                 code, message, field (the argument at fault)
    ├── NotFound                NOT_FOUND: unknown id, or another organization's
    ├── InvalidInput            INVALID_INPUT: a value fails validation
    ├── Forbidden               FORBIDDEN: the viewer's role may not do this
    ├── Conflict                CONFLICT: the change clashes with what exists (would
    │                           orphan data, take what is taken, pass a cap)
    ├── ActionNotAvailable      ACTION_NOT_AVAILABLE: action not allowed here
    ├── InvalidTransition       INVALID_TRANSITION
    ├── NotPullable             NOT_PULLABLE: an agent may not pull this prospect now
    ├── DoNotContact            DO_NOT_CONTACT: the prospect may not be contacted so
    └── AlreadyEnrolled         ALREADY_ENROLLED: already in this sequence

``Code`` lists every code once; the API's ``ErrorCode`` is made from it.

An error's ``field`` names the service argument at fault in the domain's own
words: the keyword argument, then list indices and nested field names, e.g.
``("prospect_ids", 3)`` or ``("steps", 2, "subject")``; ``()`` is the arguments
as a whole, ``None`` none in particular. The API turns it into an input path.

Services raise them before changing anything, or inside a transaction that
they roll back, so a raised DomainError always means "nothing changed".
Anything that is not a DomainError is a bug: masked for the client, logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import ClassVar

Field = tuple[str | int, ...]


class Code(Enum):
    NOT_FOUND = "NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    DO_NOT_CONTACT = "DO_NOT_CONTACT"
    ALREADY_ENROLLED = "ALREADY_ENROLLED"
    ACTION_NOT_AVAILABLE = "ACTION_NOT_AVAILABLE"
    NOT_PULLABLE = "NOT_PULLABLE"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    DUPLICATE = "DUPLICATE"
    NO_ADDRESS = "NO_ADDRESS"


class DomainError(Exception):
    code: ClassVar[Code] = Code.INVALID_INPUT

    def __init__(self, message: str, field: Sequence[str | int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field: Field | None = tuple(field) if field is not None else None


class NotFound(DomainError):
    code = Code.NOT_FOUND

    def __init__(self, entity: str, field: Sequence[str | int] | None = None) -> None:
        super().__init__(f"{entity} not found.", field)
        self.entity = entity


class InvalidInput(DomainError):
    code = Code.INVALID_INPUT


class Forbidden(DomainError):
    code = Code.FORBIDDEN

    def __init__(
        self, message: str = "Your role does not allow this.", field: Sequence[str | int] | None = None
    ) -> None:
        super().__init__(message, field)


class Conflict(DomainError):
    code = Code.CONFLICT


class ActionNotAvailable(DomainError):
    code = Code.ACTION_NOT_AVAILABLE


class InvalidTransition(DomainError):
    code = Code.INVALID_TRANSITION


class NotPullable(DomainError):
    code = Code.NOT_PULLABLE


class DoNotContact(DomainError):
    code = Code.DO_NOT_CONTACT


class AlreadyEnrolled(DomainError):
    code = Code.ALREADY_ENROLLED


class Duplicate(DomainError):
    """Another prospect of the organization has this email or externalId (R12.2)."""

    code = Code.DUPLICATE


class NoAddress(DomainError):
    """The prospect has no address for a channel a sequence sends on."""

    code = Code.NO_ADDRESS
