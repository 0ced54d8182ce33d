"""One error root; each error carries the HTTP status it maps to and reads as one clear line."""


class FraudError(Exception):
    """Base class for every error this project raises on purpose."""

    status_code = 500


class InvalidInputError(FraudError):
    """The caller sent something unusable (bad request, bad file, bad argument)."""

    status_code = 400


class NotFoundError(FraudError):
    """A model, version or object that was asked for does not exist."""

    status_code = 404


class UnavailableError(FraudError):
    """A dependency (model, registry, database) is not reachable or not ready."""

    status_code = 503
