"""The UI in a real browser: `dagster dev`, headless Chromium via Playwright; each instrument's
status in the asset graph, one instrument materialized from the launchpad, its checks per partition."""

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
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from rl_assets_tests.conftest import (
    ALL_ASSETS,
    EDGE,
    NULL,
    TINY_RUN_CONFIG,
    cli_env,
    register_instruments,
)
from rl_assets_tests.daemon_harness import describe, processes_of

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"
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
# Liveness guards, not speed targets: the CPU is shared, and the run trains.
RUN_SECONDS = 900
UI_TIMEOUT_MS = 60_000
GROUPS = {"data", "training", "evaluation", "promotion", "signal", "monitoring"}
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
    artifacts: Path | None = None

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
    """`dagster dev` on 127.0.0.1 and a free port, with a temporary SQLite instance in which
    both generated instruments are registered."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    artifacts = tmp_path / "artifacts"
    env = {
        **cli_env(home, artifacts),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RL_ASSETS_PRICES_FILE", None)
    register_instruments(home, EDGE, NULL, env=env)
    port = free_port()
    log_path = tmp_path / "dagster_dev.log"
    with open(log_path, "w") as log, signals_not_ignored():
        proc = subprocess.Popen(
            [str(DAGSTER), "dev", "-h", "127.0.0.1", "-p", str(port), "-m",
             "rl_assets.definitions"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )  # fmt: skip
    server = DevServer(proc, home, f"http://127.0.0.1:{port}", log_path, artifacts)
    try:
        yield server
    finally:
        server.stop()
        # Detached helpers of the run (its guard, Ray's reaper) end by themselves.
        deadline = time.monotonic() + 30
        while processes_of(home) and time.monotonic() < deadline:
            time.sleep(0.5)
    left = processes_of(home)
    assert left == [], f"outlived the test: {describe(left)}"


def ui_run(instance: DagsterInstance):
    """The run launched from the UI, if any yet."""
    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/from_ui": "true"}))
    assert len(runs) <= 1, [r.run_id for r in runs]
    return runs[0] if runs else None


def test_instruments_in_the_graph_one_materialized_from_the_launchpad_checks_per_partition(
    sync_playwright, dagster_dev, tmp_path
):
    from playwright.sync_api import expect

    from rl_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    groups: dict[str, list[str]] = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name, []).append(key.to_user_string())
    checks: dict[str, list[str]] = {}
    for check_key in graph.asset_check_keys:
        checks.setdefault(check_key.asset_key.to_user_string(), []).append(check_key.name)
    assert set(groups) == GROUPS
    assert {a for names in groups.values() for a in names} == ALL_ASSETS

    expect.set_options(timeout=UI_TIMEOUT_MS)
    ready_seconds = dagster_dev.wait_ready()
    base = dagster_dev.base_url
    screenshots = tmp_path / "screenshots"
    screenshots.mkdir()

    def each_node_shows(filled: str, passed: dict[str, int]) -> None:
        """Every asset node: its two instruments and how many are materialized; every checked
        node: how many of its checks passed (a check passes when every partition it ran on did)."""
        for names in groups.values():
            for name in names:
                expect(page.locator(f'[data-tooltip="{name}"]').first).to_be_visible()
                partitions = page.locator(f'a[href="/assets/{name}?view=partitions"]')
                expect(partitions.filter(has_text="filled")).to_have_text(filled)
                expect(partitions.filter(has_text="partitions")).to_have_text("2 partitions")
        for asset, names in checks.items():
            link = page.locator(f'a[href="/assets/{asset}?view=checks"]').first
            expect(link).to_have_text(f"{passed.get(asset, 0)} / {len(names)} Passed")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        # Wide enough that the fitted graph draws full asset nodes, not the minimal ones.
        page = browser.new_page(viewport={"width": 3840, "height": 2400})
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
            graph_url = page.url  # remembers the expanded groups
            # Nothing materialized yet, for either instrument; no check has run.
            each_node_shows("0% filled", {})
            page.screenshot(path=str(screenshots / "asset_graph.png"))

            # One instrument, the whole graph, from the launchpad: the partition picked from
            # the registered instruments, the tiny budget as run config.
            materialize_all = page.locator("button").filter(has_text="Materialize all")
            materialize_all.locator("xpath=ancestor::span[1]/following-sibling::*[1]").click()
            page.get_by_text("Open launchpad").click()
            launchpad = page.get_by_role("dialog")
            expect(launchpad.get_by_text("Launchpad (configure assets)")).to_be_visible()
            launchpad.get_by_placeholder("Partition").click()
            for instrument in (EDGE, NULL):
                expect(page.get_by_role("menuitem", name=instrument)).to_be_visible()
            page.get_by_role("menuitem", name=EDGE).click()
            expect(launchpad.get_by_text(f"partition: {EDGE}")).to_be_visible()
            launchpad.locator(".CodeMirror").first.click()
            page.keyboard.press("Control+A")
            page.keyboard.insert_text(yaml.safe_dump(TINY_RUN_CONFIG))
            expect(launchpad.get_by_text("No errors")).to_be_visible()
            page.screenshot(path=str(screenshots / "launchpad.png"))
            launchpad.get_by_role("button", name="Materialize").click()

            # The daemon of `dagster dev` dequeues the run.
            with DagsterInstance.from_config(str(dagster_dev.home)) as instance:
                deadline = time.monotonic() + RUN_SECONDS
                run = ui_run(instance)
                while time.monotonic() < deadline and (run is None or run.status not in FINISHED):
                    if dagster_dev.proc.poll() is not None:
                        pytest.fail(f"dagster dev exited mid-run:\n{dagster_dev.log_tail()}")
                    time.sleep(1)
                    run = ui_run(instance)
                assert run is not None, f"no run launched from the UI:\n{dagster_dev.log_tail()}"
                assert run.status == DagsterRunStatus.SUCCESS, (
                    f"run {run.run_id} ended {run.status}:\n{dagster_dev.log_tail()}"
                )
                # The config typed into the launchpad is the run's.
                assert run.run_config["ops"] == TINY_RUN_CONFIG["ops"]
                assert run.tags["dagster/partition"] == EDGE
                done = {
                    r.dagster_event.asset_key.to_user_string(): r.dagster_event.partition
                    for r in instance.all_logs(
                        run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
                    )
                }
                assert done == dict.fromkeys(ALL_ASSETS, EDGE)
                evaluations = [
                    r.dagster_event.event_specific_data
                    for r in instance.all_logs(
                        run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
                    )
                ]
                assert {e.asset_check_key for e in evaluations} == set(graph.asset_check_keys)
                assert {e.partition for e in evaluations} == {EDGE}
                assert all(e.passed for e in evaluations), [
                    e.check_name for e in evaluations if not e.passed
                ]
                raw = instance.get_latest_materialization_event(
                    next(k for k in graph.get_all_asset_keys() if k.path == ["raw_prices"])
                )
                content_hash = raw.asset_materialization.metadata["content_hash"].value
            assert (dagster_dev.artifacts / "signals" / EDGE / "latest.json").is_file()

            # Back in the graph: each asset has one of its two instruments, every check passed.
            page.goto(graph_url)
            each_node_shows("50% filled", {asset: len(names) for asset, names in checks.items()})
            page.screenshot(path=str(screenshots / "asset_graph_after_run.png"))

            # Per instrument: the partitions of an asset, and what one instrument recorded.
            page.goto(f"{base}/assets/raw_prices?view=partitions&partition={EDGE}")
            for label in ("Materialized (1)", "Missing (1)", "Failed (0)"):
                expect(page.get_by_text(label, exact=True)).to_be_visible()
            expect(page.get_by_text(content_hash, exact=True).first).to_be_visible()
            page.screenshot(path=str(screenshots / "raw_prices_partition.png"))

            # Per partition, every check: passed for the instrument that ran, missing for the
            # other, and its execution recorded for that instrument.
            for asset, names in sorted(checks.items()):
                for name in sorted(names):
                    page.goto(f"{base}/assets/{asset}?view=checks&checkDetail={name}")
                    # The check's own page (its name beside the check icon), not the first one.
                    expect(page.locator('[aria-label="asset_check"] + span')).to_have_text(name)
                    page.locator('button[role="tab"][title="Partitions"]').click()
                    for label in (
                        "Passed (1)",
                        "Missing (1)",
                        "Failed (0)",
                        "Execution Failed (0)",
                    ):
                        expect(page.get_by_text(label, exact=True)).to_be_visible()
                    page.locator('button[role="tab"][title="Execution history"]').click()
                    row = page.locator("tr").filter(has_text=EDGE)
                    expect(row).to_have_count(1)
                    expect(row.locator("td").nth(0)).to_have_text("Passed")
                    expect(row.locator("td").nth(3)).to_have_text(EDGE)
                page.screenshot(path=str(screenshots / f"checks_{asset}.png"))
        except BaseException:  # pytest.fail too: keep what the browser saw
            page.screenshot(path=str(screenshots / "failure.png"))
            raise
        finally:
            browser.close()
    print(f"dagster dev ready in {ready_seconds:.1f}s; screenshots in {screenshots}")
