"""Logging setup for entry points only: JSON lines for services and jobs, plain text for people."""

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

_RESERVED = set(vars(logging.makeLogRecord({})))
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={...}` fields become top-level keys.

    The predictor writes a line per request, so this is kept cheap: orjson, and the timestamp's
    date and time of day formatted once per second."""

    def __init__(self) -> None:
        super().__init__()
        self._second, self._prefix = -1, ""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str, option=_OPTIONS).decode()

    def _time(self, created: float) -> str:
        """ISO 8601 in UTC with milliseconds, as `datetime.isoformat(timespec="milliseconds")`."""
        second = int(created)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}+00:00"


def configure_logging(level: str = "INFO", *, json_output: bool = True) -> None:
    """Send every log record to stderr, as JSON lines or as short human-readable lines."""
    handler = logging.StreamHandler(sys.stderr)
    if json_output:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(message)s"))
    # No record carries its thread or process: saves work on every line (the predictor's per request).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("alembic", "urllib3", "httpx", "git"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # MLflow warns about its own defaults (pickled pyfunc, pip version) on every model it logs.
    logging.getLogger("mlflow").setLevel(max(logging.ERROR, root.level))
