"""Errors the predictor answers with: each carries its HTTP status and a short reason for metrics."""

from fraudcore.errors import FraudError, InvalidInputError, NotFoundError, UnavailableError


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
    """The URL names a model this server does not serve."""

    reason = "unknown_model"


class NotReadyError(UnavailableError):
    """The model is not loaded (yet, or it failed to load)."""

    reason = "not_ready"


class UnauthorizedError(FraudError):
    """A shared token is configured and the request did not carry it."""

    status_code = 401
    reason = "unauthorized"


def reason_of(error: FraudError) -> str:
    """The `reason` label of `fraud_rejected_requests_total` for an error."""
    return str(getattr(error, "reason", type(error).__name__))
