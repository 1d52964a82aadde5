"""The UI in a real browser: `dagster dev`, headless Chromium via Playwright, a run launched by a click."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from rl_assets_tests.conftest import PIPELINE_ASSETS

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"
SCREENSHOTS = REPO / "test-artifacts" / "ui"
CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium, as root, on a machine whose outside network is closed.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_SECONDS = 120
RUN_SECONDS = 180
UI_TIMEOUT_MS = 30_000
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace {
    locationEntries { name loadStatus locationOrLoadError { __typename } } } } }
"""


def missing(reason: str) -> None:
    """Under CI a missing prerequisite is a failure; elsewhere the test skips and says why."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.exists():
        missing(
            f"{CHROMIUM} not found: `make test` installs Debian's chromium as root, "
            "else run `sudo apt-get install -y chromium` (never `playwright install`)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        missing(f"playwright is not installed ({err}): run `make install`")
    return sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def signals_not_ignored() -> Iterator[None]:
    """Let children start with default SIGINT/SIGTERM handling.

    A shell starts background jobs with SIGINT ignored and children inherit that; `dagster dev`
    maps SIGTERM onto the SIGINT handler, so it would then ignore both and only die by SIGKILL.
    """
    previous = {
        sig: signal.getsignal(sig)
        for sig in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(sig) == signal.SIG_IGN
    }
    for sig in previous:
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class DevServer:
    proc: subprocess.Popen
    home: Path
    base_url: str
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def graphql(self, query: str) -> dict:
        request = urllib.request.Request(
            f"{self.base_url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def wait_ready(self) -> float:
        """Until the server answers and the code location has loaded; returns the seconds."""
        started = time.monotonic()
        while time.monotonic() - started < READY_SECONDS:
            if self.proc.poll() is not None:
                pytest.fail(f"dagster dev exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                urllib.request.urlopen(f"{self.base_url}/server_info", timeout=5).read()
                entries = self.graphql(LOCATION_QUERY)["data"]["workspaceOrError"][
                    "locationEntries"
                ]
            except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
                # Not listening yet, or the location is still loading (no data yet).
                time.sleep(0.5)
                continue
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [
                    e
                    for e in entries
                    if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"
                ]
                assert not errors, f"code location failed to load: {errors}\n{self.log_tail()}"
                return time.monotonic() - started
            time.sleep(0.5)
        pytest.fail(f"dagster dev not ready after {READY_SECONDS}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Ctrl-C for the whole process group (webserver, daemon, code servers, run workers),
        then SIGKILL for whatever is left."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


@pytest.fixture
def dagster_dev(tmp_path) -> Iterator[DevServer]:
    """`dagster dev` on 127.0.0.1 and a free port, with a temporary SQLite instance."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RL_ASSETS_ARTIFACTS": str(tmp_path / "artifacts"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    for name in ("RAY_ADDRESS", "RL_ASSETS_PRICES_FILE"):
        env.pop(name, None)
    port = free_port()
    log_path = tmp_path / "dagster_dev.log"
    with open(log_path, "w") as log, signals_not_ignored():
        proc = subprocess.Popen(
            [
                str(DAGSTER),
                "dev",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-m",
                "rl_assets.definitions",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
    server = DevServer(proc, home, f"http://127.0.0.1:{port}", log_path)
    try:
        yield server
    finally:
        server.stop()


def run_for(instance: DagsterInstance, asset: str):
    """The run launched from the UI that materializes ``asset``, if any yet."""
    for record in instance.get_run_records(filters=RunsFilter(tags={"dagster/from_ui": "true"})):
        if AssetKey(asset) in (record.dagster_run.asset_selection or set()):
            return record.dagster_run
    return None


def test_asset_graph_checks_and_a_materialization_from_the_ui(sync_playwright, dagster_dev):
    from playwright.sync_api import expect

    from rl_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    groups: dict[str, list[str]] = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name, []).append(key.to_user_string())
    checks: dict[str, list[str]] = {}
    for check_key in graph.asset_check_keys:
        checks.setdefault(check_key.asset_key.to_user_string(), []).append(check_key.name)
    assert {a for names in groups.values() for a in names} >= PIPELINE_ASSETS

    expect.set_options(timeout=UI_TIMEOUT_MS)
    ready_seconds = dagster_dev.wait_ready()
    base = dagster_dev.base_url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        # Wide enough that the fitted graph draws full asset nodes, not the minimal ones.
        page = browser.new_page(viewport={"width": 2560, "height": 1600})
        page.set_default_timeout(UI_TIMEOUT_MS)
        # A fresh instance greets the first visitor with a newsletter dialog.
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"),
            lambda: page.get_by_role("button", name="Skip").click(),
        )
        try:
            # The global asset graph opens with every group collapsed: expand each one (a
            # reload fits the graph to the window again), then every asset node is drawn.
            page.goto(f"{base}/asset-groups")
            for group, assets in sorted(groups.items()):
                node = page.locator(f'[data-tooltip="{group}"]').first
                expect(node).to_be_visible()
                if not all(page.locator(f'[data-tooltip="{a}"]').count() for a in assets):
                    node.click()
                    expect(page.locator(f'[data-tooltip="{assets[0]}"]').first).to_be_visible()
                    page.reload()
            for names in groups.values():
                for name in names:
                    expect(page.locator(f'[data-tooltip="{name}"]').first).to_be_visible()
            graph_url = page.url  # remembers the expanded groups
            page.screenshot(path=str(SCREENSHOTS / "asset_graph.png"))

            # Each checked asset's node counts its checks and links to its Checks tab, which
            # names every one of them.
            hrefs = {}
            for asset, names in checks.items():
                link = page.locator(f'a[href="/assets/{asset}?view=checks"]').first
                expect(link).to_contain_text(f"/ {len(names)} Passed")
                hrefs[asset] = link.get_attribute("href")
            for asset, names in sorted(checks.items()):
                page.goto(f"{base}{hrefs[asset]}")
                for name in names:
                    expect(page.locator(f'[title="{name}"]').first).to_be_visible()
                page.screenshot(path=str(SCREENSHOTS / f"checks_{asset}.png"))

            # Materialize raw_prices from its asset page; the daemon dequeues the run.
            page.goto(f"{base}/assets/raw_prices")
            expect(page.get_by_text("Never materialized").first).to_be_visible()
            page.locator("button").filter(has_text="Materialize").first.click()
            expect(page.get_by_text("Launched run").first).to_be_visible()
            with DagsterInstance.from_config(str(dagster_dev.home)) as instance:
                deadline = time.monotonic() + RUN_SECONDS
                run = run_for(instance, "raw_prices")
                while time.monotonic() < deadline and (run is None or run.status not in FINISHED):
                    if dagster_dev.proc.poll() is not None:
                        pytest.fail(f"dagster dev exited mid-run:\n{dagster_dev.log_tail()}")
                    time.sleep(1)
                    run = run_for(instance, "raw_prices")
                assert run is not None, f"no run launched from the UI:\n{dagster_dev.log_tail()}"
                assert run.status == DagsterRunStatus.SUCCESS, (
                    f"run {run.run_id} ended {run.status}:\n{dagster_dev.log_tail()}"
                )
                event = instance.get_latest_materialization_event(AssetKey("raw_prices"))
                assert event is not None and event.run_id == run.run_id
                evaluated = {
                    r.dagster_event.event_specific_data.check_name
                    for r in instance.all_logs(
                        run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
                    )
                }
                assert evaluated == set(checks.get("raw_prices", []))
            # The asset page shows the new materialization and the metadata it recorded.
            page.reload()
            expect(page.get_by_text("Never materialized")).to_have_count(0)
            content_hash = event.asset_materialization.metadata["content_hash"].value
            expect(page.get_by_text(content_hash, exact=True).first).to_be_visible()
            page.screenshot(path=str(SCREENSHOTS / "raw_prices_materialized.png"))
            # Back in the graph, only raw_prices has left "Never materialized".
            page.goto(graph_url)
            expect(page.locator('[data-tooltip="raw_prices"]').first).to_be_visible()
            expect(page.get_by_text("Never materialized")).to_have_count(
                len(graph.get_all_asset_keys()) - 1
            )
            page.screenshot(path=str(SCREENSHOTS / "asset_graph_after_run.png"))
        except BaseException:  # pytest.fail too: keep what the browser saw
            page.screenshot(path=str(SCREENSHOTS / "failure.png"))
            shutil.copy(dagster_dev.log_path, SCREENSHOTS / "dagster_dev.log")
            raise
        finally:
            browser.close()
    print(f"dagster dev ready in {ready_seconds:.1f}s; screenshots in {SCREENSHOTS}")
