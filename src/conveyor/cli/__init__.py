"""The command line: a thin Typer app over the runner."""

from conveyor.cli.main import app, cli

__all__ = ["app", "cli"]
