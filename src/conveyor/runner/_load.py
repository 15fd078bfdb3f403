"""A project folder opened: its configuration and its workspace (what every command starts from)."""

from __future__ import annotations

from pathlib import Path

from conveyor.core.config import Config, load_config
from conveyor.core.workspace import Workspace

__all__ = ["load_project"]


def load_project(root: Path) -> tuple[Config, Workspace]:
    workspace = Workspace.at(root)
    return load_config(workspace.config_file), workspace
