"""Every error becomes one line on stderr and the exit code it carries."""

import subprocess
import sys

import pytest

from cli.common import error_line
from fraudcore.errors import (
    DataValidationError,
    ExitCode,
    FraudError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from training.gate import GateRejectedError


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (FraudError("boom"), ExitCode.ERROR, "error: boom"),
        (InvalidInputError("bad file"), ExitCode.ERROR, "error: bad file"),
        (DataValidationError("x.csv: no rows"), ExitCode.ERROR, "error: x.csv: no rows"),
        (NotFoundError("no version 9"), ExitCode.ERROR, "error: no version 9"),
        (UnavailableError("down"), ExitCode.ERROR, "error: down"),
        (UsageError("percentage"), ExitCode.USAGE, "error: percentage"),
        (
            GateRejectedError("version 2 rejected: PR-AUC"),
            ExitCode.REJECTED,
            "rejected: version 2 rejected: PR-AUC",
        ),
    ],
)
def test_error_line_and_exit_code(
    error: FraudError, code: ExitCode, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert error_line(error) == code
    assert capsys.readouterr().err == line + "\n"


def test_http_status_stays_beside_the_exit_code() -> None:
    assert (UsageError.status_code, UsageError.exit_code) == (400, ExitCode.USAGE)
    assert (GateRejectedError.status_code, GateRejectedError.exit_code) == (422, ExitCode.REJECTED)


def test_console_script_exits_with_the_error_code(tmp_path) -> None:
    """`fraud data check` on a missing file: one line, exit 1, as the console script runs it."""
    code = "import sys; from cli import main; sys.argv[1:] = ['data', 'check', sys.argv[1]]; main()"
    missing = tmp_path / "missing.csv"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(missing)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == ExitCode.ERROR
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {missing}: no such file"]
