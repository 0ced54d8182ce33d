"""Errors the predictor answers with: each carries its HTTP status and a short reason for metrics.

Messages echo what the caller sent only through `brief` and `listing`, so a hostile request cannot
make an answer (or a log line) longer than a few hundred characters.
"""

import reprlib
from collections.abc import Collection
from itertools import islice

from fraudcore.errors import FraudError, InvalidInputError, NotFoundError, UnavailableError

INTERNAL_ERROR = "internal error"
"""The whole body of a 500: the exception itself goes to the log, never to the caller."""

MAX_MESSAGE_CHARS = 500
"""Longest error message sent or logged; anything longer is cut."""

LISTED = 5
"""Names a message lists before "and N more"."""

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 60
_SHORT.maxlist = _SHORT.maxtuple = 6
_SHORT.maxdict = 4
_SHORT.maxlevel = 2


def brief(value: object) -> str:
    """`repr` of a value the caller sent, bounded in length and in the work it takes."""
    return _SHORT.repr(value)


def listing(names: Collection[object]) -> str:
    """`a, b, c` or `a, b, c, d, e and 12 more`, each name shortened."""
    shown = [n if isinstance(n, str) and len(n) <= 60 else brief(n) for n in islice(names, LISTED)]
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(shown) + more


def message_of(error: Exception) -> str:
    """The error's message as sent to the caller, cut at `MAX_MESSAGE_CHARS`."""
    text = str(error)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


class InvalidRequestError(InvalidInputError):
    """The request is not a usable inference request (shape, datatype, names, values)."""

    reason = "invalid_input"


class BadJsonError(InvalidRequestError):
    """The body is not JSON, or its JSON part cannot be read."""

    reason = "bad_json"


class BatchTooLargeError(InvalidRequestError):
    """More rows than `FRAUD_MAX_BATCH_ROWS` in one request."""

    status_code = 413
    reason = "batch_too_large"


class UnknownModelError(NotFoundError):
    """The URL names a model (or a version of it) this server does not serve."""

    reason = "unknown_model"


class NotReadyError(UnavailableError):
    """The model is not loaded (yet, or it failed to load)."""

    reason = "not_ready"


class UnauthorizedError(FraudError):
    """A shared token is configured and the request did not carry it."""

    status_code = 401
    reason = "unauthorized"


class InternalError(FraudError):
    """Anything unexpected while answering a request: the caller gets `INTERNAL_ERROR` only."""

    reason = "internal_error"

    def __init__(self) -> None:
        super().__init__(INTERNAL_ERROR)


def reason_of(error: FraudError) -> str:
    """The `reason` label of `fraud_rejected_requests_total` for an error."""
    return str(getattr(error, "reason", type(error).__name__))
