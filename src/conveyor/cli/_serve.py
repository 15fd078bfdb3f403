"""`conveyor serve` and `conveyor build`: the prediction service, and an image of it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from conveyor.cli._app import NoWaitOpt, ProjectOpt, _console, _locked


def serve(
    project: ProjectOpt = Path("."),
    host: Annotated[Optional[str], typer.Option(
        envvar="CONVEYOR_HOST", help="Bind address (default: serving.host).")] = None,
    port: Annotated[Optional[int], typer.Option(envvar="CONVEYOR_PORT", help="Port (default: serving.port).")] = None,
    workers: Annotated[Optional[str], typer.Option(
        envvar="CONVEYOR_WORKERS",
        help="uvicorn worker processes, each with its own model: N or 'auto' (usable cores; default: serving.workers).",
    )] = None,
) -> None:
    """Serve models:/<name>@champion with FastAPI: /predict, /health, /metrics, /admin/reload."""
    from conveyor.runner import load_project, serve_project

    config, workspace = load_project(project)
    serve_project(config, workspace, host, port, _workers(workers))


def _workers(value: str | None) -> int | None:
    if value is None:
        return None
    if value == "auto":
        import os

        return len(os.sched_getaffinity(0))
    if not value.isdigit() or int(value) < 1:
        raise typer.BadParameter(f"--workers takes a number >= 1 or 'auto', not {value!r}")
    return int(value)


def build(
    project: ProjectOpt = Path("."),
    tag: Annotated[Optional[str], typer.Option("--tag", "-t", help="Image tag (default: conveyor-<name>:latest).")] = None,
    bake: Annotated[bool, typer.Option(
        "--bake/--no-bake", help="Copy the champion, the registry and the online store into the image.")] = True,
    docker: Annotated[bool, typer.Option(
        "--docker/--no-docker", help="Run docker build (--no-docker: only write the Dockerfile and context).")] = True,
    wheelhouse: Annotated[Optional[Path], typer.Option(
        help="A folder of wheels (conveyor and its dependencies) instead of pip wheel + pip download.")] = None,
    no_wait: NoWaitOpt = False,
) -> None:
    """Write a Dockerfile and .dockerignore and build an image serving the champion (hermetic: no network inside)."""
    from conveyor.runner import load_project
    from conveyor.runner._build import build_image

    with _locked(project, "conveyor build", no_wait):
        config, workspace = load_project(project)
        result = build_image(config, workspace, tag=tag, bake=bake, docker=docker, wheelhouse=wheelhouse)
    console = _console()
    console.print(f"wrote {result.dockerfile} and .dockerignore ({result.wheels} wheels in .conveyor/image/wheels)")
    if result.built:
        mount = "" if result.baked else ' -v "$PWD:$PWD" -w "$PWD"'
        from conveyor.runner._build import serving_env_names

        mount += "".join(f" -e {name}" for name in serving_env_names(config))  # the shared stores, by name
        console.print(f"built [bold]{result.tag}[/]; run it with:\n"
                      f"  docker run --rm --init -p {config.serving.port}:{config.serving.port} "
                      f"-e CONVEYOR_HOST=0.0.0.0{mount} {result.tag}")
