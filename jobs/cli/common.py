"""What every command shares: exit codes and access to the settings built by the root callback."""

import sys
from enum import IntEnum

import typer
from rich.console import Console

from fraudcore.settings import Settings

# Tables stay readable when piped: no wrapping at 80 columns outside a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)


class ExitCode(IntEnum):
    """Exit codes scripts and CronJobs can rely on."""

    OK = 0
    ERROR = 1
    USAGE = 2
    REJECTED = 3
    DRIFT = 4


def settings(ctx: typer.Context) -> Settings:
    """The settings the root callback built for this invocation."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj
