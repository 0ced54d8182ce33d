"""One error root; each error carries the HTTP status and the exit code it maps to, and reads as one line."""

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes scripts and CronJobs can rely on."""

    OK = 0
    ERROR = 1
    USAGE = 2
    REJECTED = 3
    DRIFT = 4


class FraudError(Exception):
    """Base class for every error this project raises on purpose."""

    status_code = 500
    exit_code = ExitCode.ERROR


class InvalidInputError(FraudError):
    """The caller sent something unusable (bad request, bad file, bad argument)."""

    status_code = 400


class DataValidationError(InvalidInputError):
    """A data or label file does not match what it must hold (one line naming the problem)."""


class UsageError(InvalidInputError):
    """A command-line argument is out of range; the command exits as for bad usage."""

    exit_code = ExitCode.USAGE


class NotFoundError(FraudError):
    """A model, version or object that was asked for does not exist."""

    status_code = 404


class UnavailableError(FraudError):
    """A dependency (model, registry, database) is not reachable or not ready."""

    status_code = 503
