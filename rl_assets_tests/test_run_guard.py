"""The run guard (rl_assets/run_guard.py) outside a real run."""

import os

from rl_assets import run_guard


def test_a_guard_whose_instance_is_gone_creates_nothing(tmp_path):
    """A guard started for a run of a temporary instance that was removed before the guard
    looked (tests do this every time) must not open it: SQLite storage would be created
    afresh in its place and stay behind."""
    root = tmp_path / "removed_instance"
    assert run_guard.watch(os.getpid(), "some-run", str(root)) == "instance gone"
    assert not root.exists()


def test_a_guard_whose_process_is_gone_returns_at_once(tmp_path):
    assert run_guard.watch(2**22 + 1, "some-run", str(tmp_path)) == "process already gone"


def test_a_guard_stops_without_recreating_an_instance_removed_while_it_watches(
    tmp_path, monkeypatch
):
    """The other order: the guard is watching a live run when the test's temporary instance
    is removed. Its next status check must notice, not recreate the SQLite files."""
    import shutil
    import threading
    import time

    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    root = tmp_path / "instance"
    root.mkdir()
    with dg.DagsterInstance.from_config(str(root)) as instance:
        instance.add_run(
            DagsterRun(job_name="j", run_id="live-run", status=DagsterRunStatus.STARTED)
        )
    watching = threading.Event()

    class Clock:  # the guard's clock; its first sleep means it is in its watch loop
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds):
            watching.set()
            time.sleep(seconds)

    monkeypatch.setattr(run_guard, "time", Clock)
    result = {}
    guard = threading.Thread(
        target=lambda: result.setdefault("why", run_guard.watch(os.getpid(), "live-run", str(root)))
    )
    guard.start()
    assert watching.wait(timeout=30)
    shutil.rmtree(root)
    guard.join(timeout=3 * run_guard.STATUS_EVERY_S + 5)
    assert result.get("why") == "instance gone"
    assert not root.exists()
