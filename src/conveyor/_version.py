"""Conveyor's version, in a module of its own: any layer reads it without importing the package's
`__init__` (which reaches up to the runner for `conveyor.Project`)."""

__version__ = "0.1.0"
