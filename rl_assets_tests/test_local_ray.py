"""How `make ray-down` and the tests' session-end check find a cluster's processes: by its
temp dir on their command line (and their descendants), never another cluster's."""

import subprocess
import sys
from pathlib import Path

import pytest

from rl_assets.rl.local_ray import cluster_processes, port_is_free, start_head, stop_cluster

# A stand-in for a Ray daemon: names a session dir on its command line, has a child.
DAEMON = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "time.sleep(120)"
)


def fake_daemon(session_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DAEMON, f"--session-dir={session_dir}"])


@pytest.fixture
def daemons(tmp_path):
    mine, other = tmp_path / "ray", tmp_path / "ray2"
    procs = [fake_daemon(mine / "session_1"), fake_daemon(other / "session_1")]
    yield mine, other, procs
    for p in procs:
        p.kill()
        p.wait()
    stop_cluster(other)


def test_cluster_processes_are_those_naming_its_temp_dir_and_their_children(daemons):
    mine, other, (my_daemon, other_daemon) = daemons
    found = _wait_for(lambda: cluster_processes(mine), 2)
    assert my_daemon.pid in found and other_daemon.pid not in found  # ray2 is not ray
    assert len(found) == 2  # the daemon and its child


def test_stop_cluster_stops_it_alone_and_leaves_no_process(daemons):
    mine, other, (my_daemon, other_daemon) = daemons
    _wait_for(lambda: cluster_processes(mine), 2)
    result = stop_cluster(mine, grace=3)
    assert my_daemon.pid in result["stopped"]
    assert my_daemon.wait(timeout=10) is not None
    assert cluster_processes(mine) == {}
    assert other_daemon.poll() is None and other_daemon.pid in cluster_processes(other)


def test_a_taken_port_is_refused_before_ray_start_runs(tmp_path):
    """`ray start` on a taken port (6379 here: a system redis-server) fails only after
    about 40 s; the helper refuses at once and says why."""
    import socket

    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_is_free(port)
        with pytest.raises(RuntimeError, match=f"port {port} is in use"):
            start_head(tmp_path / "ray", tmp_path / "token", port=port)
    assert not (tmp_path / "token").exists()


def _wait_for(get, n, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while len(found := get()) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_the_session_end_check_reports_and_removes_only_the_tests_ray_state(tmp_path):
    """The conftest's session-end check: it would fail on a session named after one of the
    tests' processes or an address file pointing at the tests' cluster, removing those,
    and leaves other users' sessions alone."""
    from rl_assets_tests.conftest import ray_leftovers

    system, root = tmp_path / "ray", tmp_path / "root"
    old = system / "session_2026-01-01_00-00-00_000001_111"
    old.mkdir(parents=True)
    sessions_before = set(system.glob("session_2*"))
    mine = system / "session_2026-01-02_00-00-00_000001_4242"
    other = system / "session_2026-01-02_00-00-00_000002_999"
    for session, port in ((mine, "5555"), (other, "6666")):
        session.mkdir()
        (session / "gcs_server_port_abc").write_text(port)
    (root / "ray" / "session_2026-01-02_x_1").mkdir(parents=True)
    (system / "ray_current_cluster").write_text("10.0.0.1:5555")

    problems = ray_leftovers(root, system, sessions_before, None, ours={4242})
    assert len(problems) == 2, problems
    assert "outside RAY_TMPDIR" in problems[0] and "a cluster of the tests" in problems[1]
    assert not mine.exists() and not root.exists()
    assert other.exists() and old.exists()  # other users' sessions stay

    (system / "ray_current_cluster").write_text("10.0.0.1:6666")  # another user's cluster
    assert ray_leftovers(root, system, sessions_before, None, ours={4242}) == []
