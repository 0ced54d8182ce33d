"""JSON log lines: one parseable line per record whatever the values hold."""

import json
import logging
from datetime import UTC, datetime

import numpy as np
import pytest

from fraudcore.logging import JsonFormatter


@pytest.mark.parametrize(
    "value",
    ["plain", "café", "line\u2028separator", "new\nline", "\ud800 lone surrogate", np.float32(0.5)],
)
def test_every_record_is_one_json_line(value: object) -> None:
    record = logging.makeLogRecord({"name": "t", "msg": "scored %s", "args": ("x",), "value": value})
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1  # str.splitlines also ends lines at U+2028 and others
    entry = json.loads(line)
    assert entry["message"] == "scored x" and entry["logger"] == "t"
    assert entry["value"] == (float(value) if isinstance(value, np.floating) else value)


def test_time_is_iso_utc_with_milliseconds() -> None:
    formatter = JsonFormatter()
    for created in (1_700_000_000.0, 1_700_000_000.999, 1_700_000_001.25):
        record = logging.makeLogRecord({"msg": "m", "created": created})
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert json.loads(formatter.format(record))["time"] == expected
