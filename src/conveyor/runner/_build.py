"""`conveyor build`: a Dockerfile, a .dockerignore and an image that serves the project.

The build is hermetic: everything the image installs is gathered on the host first, in
`.conveyor/image/` (the only part of the project the `.dockerignore` lets into the context):

- `wheels/` and `app/`: a wheelhouse (`pip download` of the dependencies, `pip wheel` of Conveyor's own
  source, in `app/`: its own small layer), installed with `--no-index`;
- `debs/`: the one system library the wheels need and `python:3.11-slim` lacks (`libgomp1`,
  OpenMP for LightGBM), fetched with `apt-get download`;
- `project/` (`--bake`): what `conveyor serve` reads: `conveyor.yaml`, the MLflow registry
  and artifacts, the Feast repo with its online store (relative paths: nothing to rewrite),
  and the champions' reference data. Without `--bake` the image holds no project: mount one.

`docker build --network none` proves the point: nothing is fetched inside the build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conveyor.core.config import Config
from conveyor.core.errors import ServingError
from conveyor.core.workspace import Workspace

__all__ = ["IMAGE_ROOT", "BuildResult", "build_image", "dockerfile", "dockerignore", "serving_env_names"]

IMAGE_ROOT = "/srv/project"
STAGE = Path(".conveyor") / "image"
SYSTEM_DEBS = ("libgomp1",)


@dataclass(frozen=True)
class BuildResult:
    tag: str
    dockerfile: Path
    context: Path
    baked: bool
    built: bool
    wheels: int


def dockerfile(wheel: str, *, baked: bool, port: int) -> str:
    """The project's Dockerfile: two stages, a non-root user, a health check, logs to stdout."""
    stage = STAGE.as_posix()
    project = (
        f"COPY --chown=conveyor:conveyor {stage}/project/ {IMAGE_ROOT}/\n"
        if baked else
        f"# No project baked in: mount one here (docker run -v \"$PWD:{IMAGE_ROOT}\"), or rebuild with --bake.\n"
    )
    return f"""\
# Written by `conveyor build`; rebuild with `conveyor build` rather than editing.
# Hermetic: wheels and system packages come from {stage}/ (gathered on the host); the build
# needs no network (`docker build --network none`).
FROM python:3.11-slim AS install
COPY {stage}/wheels/ /wheels/
RUN python -m venv /opt/conveyor \\
    && /opt/conveyor/bin/pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl

FROM python:3.11-slim
COPY {stage}/debs/ /tmp/debs/
RUN dpkg -i /tmp/debs/*.deb && rm -rf /tmp/debs \\
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin conveyor \\
    && mkdir -p {IMAGE_ROOT}/predictions && chown -R conveyor:conveyor {IMAGE_ROOT}
# The dependencies' layers above are cached while the wheelhouse is unchanged; Conveyor itself is the small layer.
COPY --from=install /opt/conveyor /opt/conveyor
COPY {stage}/app/ /tmp/app/
RUN /opt/conveyor/bin/pip install --no-cache-dir --no-index --no-deps /tmp/app/{wheel} && rm -rf /tmp/app
{project}ENV PATH=/opt/conveyor/bin:$PATH \\
    PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1 \\
    MPLCONFIGDIR=/tmp/matplotlib \\
    CONVEYOR_HOST=127.0.0.1 \\
    CONVEYOR_PORT={port}
WORKDIR {IMAGE_ROOT}
USER 10001
VOLUME ["{IMAGE_ROOT}/predictions"]
EXPOSE {port}
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['CONVEYOR_PORT'] + '/health', timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["conveyor", "serve"]
"""


def dockerignore() -> str:
    stage = STAGE.as_posix()
    return f"""\
# Written by `conveyor build`: only what the image needs enters the build context.
*
!{stage}/wheels/
!{stage}/app/
!{stage}/debs/
!{stage}/project/
"""


def build_image(
    config: Config, workspace: Workspace, *, tag: str | None = None, bake: bool = True, docker: bool = True,
    wheelhouse: Path | None = None,
) -> BuildResult:
    """Gather the wheelhouse, the system packages and (with `bake`) the project, write the Dockerfile, build."""
    root = workspace.root
    stage = root / STAGE
    stage.mkdir(parents=True, exist_ok=True)
    wheels = _wheelhouse(stage / "wheels", wheelhouse)
    app = stage / "app"
    shutil.rmtree(app, ignore_errors=True)
    app.mkdir()
    own = sorted((stage / "wheels").glob("conveyor-*.whl"))
    for wheel in own:
        shutil.move(wheel, app / wheel.name)  # its own layer: the dependencies' layers stay cached
    _debs(stage / "debs")
    project = stage / "project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    if bake:
        _bake(config, workspace, project)
    (root / "Dockerfile").write_text(dockerfile(own[-1].name, baked=bake, port=config.serving.port))
    (root / ".dockerignore").write_text(dockerignore())
    image = tag or f"conveyor-{config.name}:latest"
    if docker:
        _run(["docker", "build", "--network", "none", "-t", image, "-f", str(root / "Dockerfile"), str(root)],
             what="docker build", stream=True)
    return BuildResult(image, root / "Dockerfile", root, bake, docker, wheels)


def source_root() -> Path | None:
    """Conveyor's source tree (an editable install or a checkout), or None for an installed wheel."""
    import conveyor

    here = Path(conveyor.__file__).resolve().parent
    for folder in here.parents:
        pyproject = folder / "pyproject.toml"
        if pyproject.exists() and 'name = "conveyor"' in pyproject.read_text():
            return folder
    return None


def _wheelhouse(folder: Path, given: Path | None) -> int:
    """Conveyor's wheel and exactly the dependency wheels it resolves to, in `folder`.

    The folder is kept between builds so pip reuses what is there, but it is rebuilt as the
    resolved set each time: a release of a dependency between two builds would otherwise leave
    two versions side by side, and the image's `pip install /wheels/*.whl` refuses the pair.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("conveyor-*.whl"):
        old.unlink()
    if given is not None:
        wanted = {wheel.name for wheel in given.glob("*.whl")}
        for stale in folder.glob("*.whl"):
            if stale.name not in wanted:
                stale.unlink()
        for wheel in given.glob("*.whl"):
            target = folder / wheel.name
            if not target.exists():
                shutil.copy2(wheel, target)
    else:
        source = source_root()
        if source is None:
            raise ServingError(
                "conveyor build needs Conveyor's source tree (pip install -e) to build its wheel, "
                "or --wheelhouse DIR holding a conveyor wheel and its dependencies"
            )
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        fresh = folder.with_name(folder.name + ".resolving")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir()
        _run([*pip, "wheel", "--quiet", "--no-deps", "-w", str(fresh), str(source)],
             what="pip wheel (Conveyor)")
        # The kept wheels are offered as links: what the resolver picks from them is copied, not fetched.
        _run([*pip, "download", "--quiet", "--only-binary=:all:", "--python-version", "3.11",
              "--find-links", str(folder), "-d", str(fresh), str(source)], what="pip download (dependencies)")
        shutil.rmtree(folder)
        fresh.rename(folder)
    found = len(list(folder.glob("*.whl")))
    if not list(folder.glob("conveyor-*.whl")):
        raise ServingError(f"no conveyor wheel in the wheelhouse {folder}")
    return found


def _debs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    missing = [name for name in SYSTEM_DEBS if not list(folder.glob(f"{name}_*.deb"))]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise ServingError(
            f"conveyor build fetches {', '.join(missing)} with apt-get download (Debian/Ubuntu); "
            f"put the .deb files in {folder} by hand on other systems"
        )
    _run(["apt-get", "download", *missing], what="apt-get download", cwd=folder)


def serving_env_names(config: Config) -> list[str]:
    """The environment variables `conveyor serve` reads the shared stores' addresses from
    (`stores:`): passed into a container by name (`docker run -e NAME`), never written in the image."""
    stores = config.stores
    names = [
        stores.mlflow.tracking_uri_env if stores.mlflow is not None else None,
        stores.registry.dsn_env if stores.registry is not None else None,
        stores.online.url_env if stores.online is not None else None,
    ]
    return list(dict.fromkeys(n for n in names if n is not None))


def _bake(config: Config, workspace: Workspace, project: Path) -> None:
    """The files `conveyor serve` reads; a workspace is relocatable, so a copy is all it takes."""
    root = workspace.root
    server = config.stores.mlflow is not None  # runs and models on the MLflow server: no mlflow.db to copy
    needed = [workspace.config_file] if server else [workspace.config_file, workspace.mlflow_db]
    for path in needed:
        if not path.exists():
            raise ServingError(f"nothing to bake: {path} is missing; run `conveyor run` first")
    shutil.copy2(workspace.config_file, project / workspace.config_file.name)
    if not server:
        _copy_sqlite(workspace.mlflow_db, project / workspace.mlflow_db.name)
    for folder in (workspace.mlartifacts, workspace.feature_repo, workspace.reference):
        if folder.exists():
            shutil.copytree(folder, project / folder.relative_to(root),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # nothing to rewrite: the Feast repo holds relative paths and MLflow's model files are found
    # under the current mlartifacts/, so the copy works at /srv/project as it does here


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, even while another process writes it."""
    import sqlite3

    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _run(command: list[str], *, what: str, cwd: Path | None = None, stream: bool = False) -> None:
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    done = subprocess.run(command, cwd=cwd, env=env, text=True,
                          stdout=None if stream else subprocess.PIPE, stderr=None if stream else subprocess.STDOUT)
    if done.returncode != 0:
        output = "" if stream else f":\n{done.stdout[-3000:]}"
        raise ServingError(f"{what} failed (exit {done.returncode}): {' '.join(command)}{output}")
