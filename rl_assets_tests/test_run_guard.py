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
