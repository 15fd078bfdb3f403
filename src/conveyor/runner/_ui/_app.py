"""The project page: a read-only FastAPI app on Jinja2 templates (autoescaped), no build step.

Every value from the data goes through the templates' autoescaping, or into the page with
`textContent` from JSON (the lineage search, the live service); a Content-Security-Policy
allows only this app's own script and style files, so a hostile value that slipped through
still could not run. The embedded reports are served in sandboxed frames without scripts.
"""

from __future__ import annotations

from importlib import resources
from typing import Any
from urllib.parse import quote

from conveyor.core.config import Config
from conveyor.core.errors import ConveyorError
from conveyor.core.workspace import Workspace
from conveyor.runner._ui import _data

__all__ = ["create_app"]

PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
               "frame-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
REPORT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox"
STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}


def _package_file(name: str) -> str:
    return resources.files("conveyor.runner._ui").joinpath("static", name).read_text(encoding="utf-8")


def create_app(config: Config, workspace: Workspace, *, serving_url: str, mlflow_url: str) -> Any:
    """The app for one project; `serving_url` is where `/metrics` is read, `mlflow_url` MLflow's UI."""
    from fastapi import FastAPI, Query, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("conveyor.runner._ui", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["mlflow_run"] = lambda run_id, experiment: (
        f"{mlflow_url.rstrip('/')}/#/experiments/{quote(str(experiment), safe='')}/runs/{quote(str(run_id), safe='')}"
    )
    env.filters["seconds"] = lambda value: "-" if value is None else (
        f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s")
    snapshot = _data.Snapshot(config, workspace)
    static = {name: _package_file(name) for name in STATIC}
    last_service: dict[str, Any] = {}
    app = FastAPI(title=f"Conveyor: {config.name}", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    def page(template: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(template).render(project=config.name, root=str(workspace.root),
                                                              **context))

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        models, features, errors = snapshot.read()
        history = _data.drift_history(workspace)
        return page(
            "page.html",
            stages=_data.pipeline(config, workspace),
            quality=_data.quality(workspace),
            features=features,
            models=models,
            errors=errors,
            drift=history,
            charts=_charts(history),
            reports=_data.reports(workspace),
            serving_url=serving_url,
            mlflow_url=mlflow_url,
        )

    @app.get("/quarantine/{name}", response_class=HTMLResponse)
    def quarantine(name: str) -> HTMLResponse:
        found = _data.quarantine_rows(workspace, name)
        if found is None:
            return HTMLResponse(env.get_template("missing.html").render(project=config.name, what=name), 404)
        header, rows, more = found
        return page("quarantine.html", name=name, header=header, rows=rows, more=more, limit=_data.QUARANTINE_ROWS)

    @app.get("/reports/{name}")
    def report(name: str) -> Response:
        if name not in _data.reports(workspace):
            return HTMLResponse(env.get_template("missing.html").render(project=config.name, what=name), 404)
        return FileResponse(workspace.reports / name, media_type="text/html",
                            headers={"Content-Security-Policy": REPORT_POLICY})

    @app.get("/static/{name}")
    def asset(name: str) -> Response:
        if name not in STATIC:
            return Response(status_code=404)
        return Response(static[name], media_type=STATIC[name])

    @app.get("/api/lineage")
    def lineage(request_id: str = Query("", max_length=200)) -> JSONResponse:
        from conveyor.runner._lineage import lineage_of_prediction

        request_id = request_id.strip()
        if not request_id:
            return JSONResponse({"error": "give a request id (the `request_id` of a served answer)"})
        try:
            steps = lineage_of_prediction(config, workspace, request_id)
        except ConveyorError as error:
            return JSONResponse({"error": str(error)})
        return JSONResponse({"request_id": request_id, "steps": [
            {"depth": s.depth, "kind": s.kind, "digest": s.digest, "path": s.path, "summary": s.summary}
            for s in steps]})

    @app.get("/api/service")
    def live() -> JSONResponse:
        state = _data.service(serving_url, last_service.get("state"))
        if state.get("running"):
            last_service["state"] = state
        return JSONResponse({k: v for k, v in state.items() if k != "at"})

    app.state.snapshot = snapshot
    return app


def _charts(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Line charts (SVG coordinates, numbers only) of the drift checks over time."""
    charts = []
    for key, title, unit in (("drifted_share", "Share of drifted features", "share"),
                             ("prediction_psi", "Prediction PSI", "PSI"),
                             ("performance", "Performance on labeled traffic", "metric")):
        points = [(p["at"], p[key]) for p in history if p[key] is not None]
        if not points:
            continue
        values = [v for _, v in points]
        low, high = min(0.0, min(values)), max(values)
        span = (high - low) or 1.0
        width, height, pad = 560, 180, 44
        step = (width - 2 * pad) / max(1, len(points) - 1)
        coords = [(pad + i * step if len(points) > 1 else width / 2, height - pad - (v - low) / span * (height - 2 * pad))
                  for i, (_, v) in enumerate(points)]
        charts.append({
            "title": title if key != "performance" else f"{title} ({history[-1]['metric'] or unit})",
            "width": width, "height": height, "pad": pad,
            "line": " ".join(f"{x:.1f},{y:.1f}" for x, y in coords),
            "dots": [{"x": f"{x:.1f}", "y": f"{y:.1f}", "label": f"{at}: {v:.4g}"} for (x, y), (at, v) in zip(coords, points)],
            "low": f"{low:.3g}", "high": f"{high:.3g}", "first": points[0][0], "last": points[-1][0],
        })
    return charts
