"""Stages: sources | prep | features | training | serving | monitoring.

Each stage is a plain function taking the config, the workspace and the previous stage's
artifact, and returning its own artifact. Stage packages do not import each other, except
through the small public functions named in `docs/architecture.md`.
"""
