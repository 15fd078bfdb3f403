"""`conveyor ui` in a real browser: Playwright driving Debian's Chromium through the project page
of a trained, served and monitored project, and of a project whose column names and values are
HTML and script.

Set CONVEYOR_UI_SCREENSHOTS=DIR to keep screenshots of the page (docs/ui*.png are made so).
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, bike_rows, conveyor, feature_row, free_port, make_bike_project

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
VALUES = ["<b>bold</b>", "\"quoted' value", "<script>alert(3)</script>", "plain & simple"]
BAD_NUMBER = "<img src=x onerror=alert(4)>"


def _chromium() -> str:
    """Debian's Chromium (Playwright's own browser download is unreachable here); installed if missing."""
    path = shutil.which("chromium")
    if path is None and shutil.which("apt-get") is not None and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=1200, check=False)
        path = shutil.which("chromium")
    if path is None:
        pytest.fail("no Chromium for the browser tests: install it with `apt-get install -y chromium`")
    return path


class UI:
    """`conveyor ui` on a free loopback port, in a session of its own; stopped by its process group."""

    def __init__(self, project: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = project / f"ui-{self.port}.log"
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "ui", "-C", str(project), "--port", str(self.port), *args],
                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"conveyor ui exited ({self.process.returncode}):\n{self.log.read_text()}")
            try:
                if httpx.get(self.url, timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.stop()
        raise AssertionError(f"conveyor ui not ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Watched:
    """A page with every console error, uncaught exception and dialog (an `alert`) recorded."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def close(self) -> None:
        self.context.close()


def _serve(server: Server, rows: list[dict[str, str]]) -> list[str]:
    features = httpx.get(f"{server.url}/health").json()["features"]
    ids = []
    for start in range(0, len(rows), 50):
        batch = [feature_row(r, features) for r in rows[start:start + 50]]
        answer = httpx.post(f"{server.url}/predict", json={"rows": batch}, timeout=60)
        answer.raise_for_status()
        ids += [p["request_id"] for p in answer.json()["predictions"]]
    return ids


@pytest.fixture(scope="module")
def served_bike(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Server, list[str]]]:
    """A small bike project, trained once, served and monitored twice (with labels the second time)."""
    rows = bike_rows()
    project = make_bike_project(tmp_path_factory.mktemp("ui-bike"), rows[:2500])
    conveyor("run", "-C", str(project), "--no-search")
    server = Server(project).start()
    try:
        later = random.Random(3).sample(rows[2500:], 120)
        ids = _serve(server, later[:60])
        conveyor("monitor", "-C", str(project))
        ids += _serve(server, later[60:])
        labels = project / "labels.csv"
        with labels.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["request_id", "cnt"])
            writer.writerows((rid, row["cnt"]) for rid, row in zip(ids, later))
        conveyor("labels", "add", str(labels), "-C", str(project))
        conveyor("monitor", "-C", str(project))
        yield project, server, ids
    finally:
        server.stop()


def test_project_page_in_a_browser(browser: Any, served_bike: tuple[Path, Server, list[str]]) -> None:
    from playwright.sync_api import expect

    project, server, ids = served_bike
    ui = UI(project, "--serving-url", server.url, "--mlflow-url", "http://127.0.0.1:5999")
    watched = Watched(browser)
    page = watched.page
    try:
        page.goto(ui.url)
        for section, heading in (("pipeline", "Pipeline"), ("quality", "Data quality"), ("features", "Feature views"),
                                 ("models", "Models"), ("service", "Live service"),
                                 ("drift", "Drift and performance over time"), ("lineage", "Lineage"),
                                 ("reports", "Reports")):
            expect(page.locator(f"#{section} h2")).to_have_text(heading)
        stages = page.locator("#pipeline tbody tr")
        expect(stages).to_have_count(7)
        expect(stages.filter(has_text="promote")).to_contain_text("champion = v1")
        expect(page.locator("#quality")).to_contain_text("2,500 clean rows")
        expect(page.locator("#features .view h3")).to_have_text("bike_sharing_features")
        expect(page.locator("#features")).to_contain_text("bike-sharing")
        expect(page.locator("#models .badge.champion").first).to_have_text("@champion")
        run_link = page.locator("#models table a").first
        assert run_link.get_attribute("href").startswith("http://127.0.0.1:5999/#/experiments/")
        assert _experiment_kind(project) == "custom_model_development"  # MLflow 3's UI opens the runs view
        expect(page.locator("#models .decisions li").first).to_contain_text("promoted")
        # the live service: figures parsed from the running server's /metrics
        expect(page.locator("#service-tile")).to_have_text("running bike-sharing v1")
        expect(page.locator("#service .stat").filter(has_text="requests").locator(".value")).to_have_text("4")
        expect(page.locator("#service .stat").filter(has_text="rows per batch")).to_contain_text("mean")
        # drift over time: two checks, the second with labeled performance
        expect(page.locator("#drift tbody tr")).to_have_count(2)
        expect(page.locator("#drift figure.chart").first.locator("circle")).to_have_count(2)
        expect(page.locator("#drift figcaption").filter(has_text="Performance on labeled traffic")).to_have_count(1)
        # the embedded reports, in sandboxed frames
        expect(page.frame_locator("#reports iframe").first.locator("h1")).to_contain_text("exploratory data analysis")
        # lineage: a served request id -> model -> run -> training set -> raw file
        page.fill("#lineage-input", ids[-1])
        page.click("#lineage-form button")
        steps = page.locator("#lineage-result li")
        expect(steps.first).to_contain_text(ids[-1][:24])
        for kind in ("prediction", "model", "training_set", "clean", "raw", "source_file"):
            expect(page.locator("#lineage-result .kind").filter(has_text=kind).first).to_be_visible()
        page.fill("#lineage-input", "no-such-request")
        page.click("#lineage-form button")
        expect(page.locator("#lineage-result .error")).to_contain_text("no logged prediction has request id")
        _screenshots(page, ids[-1])
        # a stopped service reads "not running"
        server.stop()
        page.reload()
        expect(page.locator("#service-tile")).to_have_text("not running")
        expect(page.locator("#service-body")).to_contain_text("not running")
        assert watched.errors == [] and watched.dialogs == []
    finally:
        watched.close()
        ui.stop()


@pytest.fixture(scope="module")
def hostile_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Column names and values that are HTML and script; one number that is markup, quarantined."""
    project = tmp_path_factory.mktemp("ui-hostile")
    rng = random.Random(7)
    with (project / "hostile.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([SCRIPT, IMG, "y"])
        for i in range(300):
            x = rng.uniform(0, 10)
            value = VALUES[i % len(VALUES)]
            writer.writerow([BAD_NUMBER if i == 17 else f"{x:.3f}", value, f"{2 * x + i % 4 + rng.gauss(0, 0.3):.3f}"])
    conveyor("init", "--csv", "hostile.csv", "--target", "y", cwd=project)
    conveyor("run", "--no-search", cwd=project)
    server = Server(project).start()
    try:
        rows = [{SCRIPT: 1.5 + i / 10, IMG: VALUES[i % len(VALUES)]} for i in range(40)]
        httpx.post(f"{server.url}/predict", json={"rows": rows}, timeout=60).raise_for_status()
    finally:
        server.stop()
    conveyor("monitor", cwd=project)
    yield project


def test_hostile_names_and_values_render_as_text(browser: Any, hostile_project: Path) -> None:
    from playwright.sync_api import expect

    ui = UI(hostile_project)
    watched = Watched(browser)
    page = watched.page
    try:
        page.goto(ui.url)
        expect(page.locator("#features details summary")).to_have_text("fields")
        page.click("#features details summary")
        fields = page.locator("#features table")
        expect(fields).to_contain_text(SCRIPT)
        expect(fields).to_contain_text(IMG)
        expect(page.locator("#quality")).to_contain_text(SCRIPT)  # the column that sent a row to quarantine
        quarantine = page.locator("#quality a.pill").first
        quarantine.click()
        table = page.locator("#quarantine-rows table")
        expect(table).to_contain_text(BAD_NUMBER)
        expect(table.locator("th").filter(has_text=SCRIPT)).to_have_count(1)
        expect(table.locator("th").filter(has_text=IMG)).to_have_count(1)
        # no markup from the data became an element, and nothing ran
        for url in (ui.url, page.url):
            page.goto(url)
            assert page.evaluate("document.querySelectorAll('img').length") == 0
            scripts = page.evaluate("Array.from(document.scripts).map(s => s.getAttribute('src'))")
            assert scripts in ([], ["/static/ui.js"]), scripts
            assert page.evaluate("document.querySelectorAll('b').length") == 0
        page.goto(ui.url)
        frame = page.frame_locator("#reports iframe").first
        expect(frame.locator("body")).to_contain_text(SCRIPT)  # the EDA report names the column as text
        assert watched.dialogs == [], watched.dialogs
        assert watched.errors == [], watched.errors
    finally:
        watched.close()
        ui.stop()


def _experiment_kind(project: Path) -> str:
    from mlflow import MlflowClient

    experiment = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}").get_experiment_by_name("bike-sharing")
    return str(experiment.tags.get("mlflow.experimentKind"))


def _screenshots(page: Any, request_id: str) -> None:
    """The page, and the models, drift and lineage sections, into $CONVEYOR_UI_SCREENSHOTS."""
    folder = os.environ.get("CONVEYOR_UI_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.fill("#lineage-input", request_id)
    page.click("#lineage-form button")
    page.locator("#lineage-result li").last.wait_for()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(Path(folder) / "ui.png"))
    for section in ("models", "drift", "lineage"):
        page.locator(f"#{section}").screenshot(path=str(Path(folder) / f"ui-{section}.png"))
