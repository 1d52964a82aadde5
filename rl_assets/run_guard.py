"""A watchdog per run: if the process running it dies (SIGKILL, out of memory), the run is
marked failed and its concurrency-pool slots are freed.

Without it a killed run stays STARTED forever and keeps its slot of ``rl_assets_training``
or ``rl_assets_promotion``: every later run, from the CLI, the UI or a sensor, would wait
for that slot for ever (Dagster frees slots only for runs that end). The first asset of a
run that touches a pool starts one guard for the run's process; the guard exits when the
run finishes.

    python -m rl_assets.run_guard <pid> <run_id> <instance_root>
"""

import os
import signal
import subprocess
import sys
import time

from rl_assets.rl.reaper import _stat

_GUARDED: set[str] = set()
_DETACH = (
    "import subprocess, sys; "
    "subprocess.Popen([sys.executable, *sys.argv[1:]], start_new_session=True, "
    "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
)
STATUS_EVERY_S = 2.0


def ensure(context) -> None:
    """Start this run's guard once per process (steps run in one process: in-process executor)."""
    instance = context.instance
    run_id = context.run_id
    root = getattr(instance, "root_directory", None)
    if run_id in _GUARDED or instance.is_ephemeral or not root:
        return
    _GUARDED.add(run_id)
    # Detached (started by a short-lived intermediate): not a descendant of this process, so
    # nothing that cleans up after this process (the Ray reaper, a process-group kill) stops
    # the guard before it has done its job.
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _DETACH,
            "-m",
            "rl_assets.run_guard",
            str(os.getpid()),
            run_id,
            root,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    launcher.wait()


def watch(pid: int, run_id: str, root: str) -> str:
    """Block until the run finishes (nothing to do) or its process dies (fail it, free slots)."""
    import dagster as dg

    first = _stat(pid)
    if first is None:
        return "process already gone"
    if not os.path.isdir(root):
        # A temporary instance removed before the guard got here: opening it would create
        # fresh, empty SQLite storage in its place and leave that behind.
        return "instance gone"
    with dg.DagsterInstance.from_config(root) as instance:
        last_status_check = 0.0
        while True:
            info = _stat(pid)
            died = info is None or info[1] != first[1]
            now = time.monotonic()
            if died or now - last_status_check >= STATUS_EVERY_S:
                last_status_check = now
                if not os.path.isdir(root):
                    return "instance gone"  # removed while watching: do not recreate it
                run = instance.get_run_by_id(run_id)
                if run is None:
                    return "run deleted"
                if run.is_finished:
                    return f"run finished ({run.status.value})"
                if died:
                    instance.report_run_failed(
                        run,
                        f"the process running this run (pid {pid}) died: killed or out of "
                        "memory. Its concurrency slots are freed; rerun it.",
                    )
                    if instance.event_log_storage.supports_global_concurrency_limits:
                        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
                    return "run failed, slots freed"
            time.sleep(0.5)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watch(int(sys.argv[1]), sys.argv[2], sys.argv[3])
