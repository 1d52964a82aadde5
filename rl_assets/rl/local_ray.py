"""A long-lived local Ray for repeated runs: started once, joined by every run, stopped alone.

Each training run that starts its own Ray pays its start-up and shut-down (seconds, see
benchmarks/RESULTS.md); joining a running one costs a fraction of a second. ::

    python -m rl_assets.rl.local_ray up [--port PORT] [--num-cpus N]   # make ray-up
    source .ray_env                                                   # RAY_ADDRESS and auth
    python -m rl_assets.rl.local_ray status
    python -m rl_assets.rl.local_ray down                             # make ray-down

``up`` runs ``ray start --head`` on a free port (never 6379 unless asked: on this
machine kind a system redis-server holds it and ``ray start`` there fails after about
40 s), with its own temp dir (so it never writes ``/tmp/ray/ray_current_cluster``, which
a plain ``ray.init()`` elsewhere would follow after the cluster is gone) and token
authentication on with a token of its own (``RAY_AUTH_MODE=token``,
``RAY_AUTH_TOKEN_PATH``): left unset, ``ray start`` enables token auth only if
``~/.ray/auth_token`` exists while a driver given an address never does, so head and
driver disagree. It writes the address to ``.ray_address`` and the three exports to
``.ray_env``.

``down`` stops only this cluster: its processes are those whose command line names its
temp dir, and their descendants, stopped in ``ray stop``'s order (raylet, the rest,
gcs_server; SIGTERM, then SIGKILL after a grace period). ``ray stop`` itself stops every
Ray on the machine, other users' included.
"""

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RAY_DEFAULT_PORT = 6379
STATE_DIR = Path(".ray")
ADDRESS_FILE = Path(".ray_address")
ENV_FILE = Path(".ray_env")
# Every Ray this project starts runs its workers at the priority of the process that
# started it. Ray's default (worker_niceness 15) ranks them below any ordinary process: the
# training the workers do (a walk-forward fold is a Ray task) then gets a few percent of a
# core beside any busy process at niceness 0 (a Dagster step polling for its pool slot,
# another job on the desk's machine). Measured on 2 cores beside two busy loops: the
# folds of one tiny run took 150 s at 15, 13.5 s at 0 (10 s on an idle machine).
# Pass a copy to ray.init: Ray adds its own keys to the dict it is given.
SYSTEM_CONFIG: dict[str, Any] = {"worker_niceness": 0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def write_token(path: Path) -> Path:
    """A new random token readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path


def auth_env(token_path: Path) -> dict[str, str]:
    """What a head and every driver of the cluster need in their environment."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(Path(token_path).resolve())}


def _ray_cli() -> str:
    return str(Path(sys.executable).parent / "ray")


def start_head(
    temp_dir: Path,
    token_path: Path,
    port: int | None = None,
    num_cpus: int | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """``ray start --head`` (returns once it is up) with its own temp dir and token."""
    port = port or free_port()
    if not port_is_free(port):
        hint = " (a system redis-server often holds Ray's default port)" if port == 6379 else ""
        raise RuntimeError(f"port {port} is in use{hint}; pick another with --port or omit it")
    temp_dir = Path(temp_dir).resolve()
    temp_dir.mkdir(parents=True, exist_ok=True)
    if not Path(token_path).exists():
        write_token(Path(token_path))
    cmd = [
        _ray_cli(), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
        f"--num-cpus={num_cpus or os.cpu_count() or 1}", "--include-dashboard=false",
        "--disable-usage-stats", f"--temp-dir={temp_dir}",
        f"--system-config={json.dumps(SYSTEM_CONFIG)}",
    ]  # fmt: skip
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **auth_env(token_path)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        stop_cluster(temp_dir)
        raise RuntimeError(f"ray start failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {
        "address": f"127.0.0.1:{port}",
        "temp_dir": str(temp_dir),
        "token_path": str(Path(token_path).resolve()),
    }


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def cluster_processes(temp_dir: Path) -> dict[int, str]:
    """pid -> command line of every live process of the cluster rooted at ``temp_dir``:
    those naming it on their command line (gcs_server, raylet, agents, monitors) and
    their descendants (workers rename themselves ``ray::...``)."""
    from rl_assets.rl.reaper import descendants

    # The temp dir as a whole path component: /tmp/x never matches /tmp/x2.
    marker = re.compile(re.escape(str(Path(temp_dir).resolve())) + r"(?=[/\s]|$)")
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and marker.search(cmd := _cmdline(int(entry))):
            found[int(entry)] = cmd
    for pid in list(found):
        for child in descendants(pid):
            found.setdefault(child, _cmdline(child))
    found.pop(os.getpid(), None)
    return {pid: cmd for pid, cmd in found.items() if cmd}


def _signal_and_wait(pids: list[int], grace: float) -> list[int]:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _alive(p)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop_cluster(temp_dir: Path, grace: float = 10.0) -> dict[str, list[int]]:
    """Stop the cluster rooted at ``temp_dir`` the way ``ray stop`` orders it (raylet,
    then the other processes, then gcs_server), and nothing else; then remove its
    address file. Returns the pids stopped and those that needed SIGKILL."""
    procs = cluster_processes(temp_dir)
    raylet = [p for p, c in procs.items() if "/raylet/raylet " in c]
    gcs = [p for p, c in procs.items() if "/gcs/gcs_server " in c]
    rest = [p for p in procs if p not in raylet and p not in gcs]
    killed: list[int] = []
    for bucket in (raylet, rest, gcs):
        killed += _signal_and_wait(bucket, grace / 3)
    deadline = time.monotonic() + 5
    while (left := cluster_processes(temp_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # started while stopping (e.g. a worker being spawned)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        (Path(temp_dir) / "ray_current_cluster").unlink()
    return {"stopped": sorted(procs), "killed": sorted(killed + list(left))}


def is_up(state: dict[str, Any]) -> bool:
    return any("/gcs/gcs_server " in c for c in cluster_processes(state["temp_dir"]).values())


def _read_state(root: Path) -> dict[str, Any] | None:
    path = root / STATE_DIR / "state.json"
    return json.loads(path.read_text()) if path.exists() else None


def up(root: Path, port: int | None = None, num_cpus: int | None = None) -> dict[str, Any]:
    """Start the project's long-lived Ray unless it is already up; write the env files."""
    state_dir = root / STATE_DIR
    state = _read_state(root)
    if state and is_up(state):
        return {**state, "already_up": True}
    if state:  # recorded but gone: clear what is left
        down(root)
    state_dir.mkdir(exist_ok=True)
    # A short temp dir (Ray's socket paths live in it, 107-byte limit): under $RAY_TMPDIR
    # if set (Ray's own setting for its temp root), else the system temp dir.
    temp_dir = Path(tempfile.mkdtemp(prefix="rl-assets-ray-", dir=os.environ.get("RAY_TMPDIR")))
    state = start_head(temp_dir, state_dir / "auth_token", port=port, num_cpus=num_cpus)
    (state_dir / "state.json").write_text(json.dumps(state, indent=1))
    (root / ADDRESS_FILE).write_text(state["address"] + "\n")
    exports = {"RAY_ADDRESS": state["address"], **auth_env(Path(state["token_path"]))}
    (root / ENV_FILE).write_text("".join(f"export {k}={v}\n" for k, v in exports.items()))
    return {**state, "already_up": False}


def down(root: Path) -> dict[str, Any]:
    """Stop the project's long-lived Ray (only it) and remove its files."""
    state = _read_state(root)
    result: dict[str, Any] = {"stopped": [], "killed": []}
    if state:
        result = stop_cluster(Path(state["temp_dir"]))
        shutil.rmtree(state["temp_dir"], ignore_errors=True)
    for path in (root / ADDRESS_FILE, root / ENV_FILE, root / STATE_DIR / "state.json"):
        path.unlink(missing_ok=True)
    return {"state": state, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--num-cpus", type=int, default=None, help="default: all cores")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="where the files go")
    args = parser.parse_args(argv)
    if args.command == "up":
        state = up(args.root, args.port, args.num_cpus)
        verb = "already running" if state["already_up"] else "started"
        print(
            f"Ray {verb} at {state['address']} (temp dir {state['temp_dir']}).\n"
            f"Runs join it after: source {ENV_FILE}   (RAY_ADDRESS, RAY_AUTH_MODE, "
            "RAY_AUTH_TOKEN_PATH)\nStop it with: make ray-down"
        )
    elif args.command == "down":
        result = down(args.root)
        if not result["state"]:
            print("no long-lived Ray recorded here (nothing to stop)")
        else:
            print(
                f"stopped Ray at {result['state']['address']}: {len(result['stopped'])} "
                f"processes ({len(result['killed'])} needed SIGKILL); unset RAY_ADDRESS"
            )
    else:
        state = _read_state(args.root)
        if not state:
            print("no long-lived Ray recorded here")
            return 1
        alive = is_up(state)
        print(f"Ray at {state['address']}: {'up' if alive else 'down'}")
        return 0 if alive else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
