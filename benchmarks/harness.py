"""Shared benchmark plumbing: one measurement per fresh subprocess, repeats summarised."""

import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = "BENCH_RESULT "
PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20


class ChildFailed(RuntimeError):
    pass


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment with telemetry off and warnings quiet, as `make` sets it."""
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.update(extra or {})
    return env


def emit(result: dict[str, Any]) -> None:
    """Child side: hand one JSON result back to the parent on stdout."""
    print(MARKER + json.dumps(result), flush=True)


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (Linux /proc), in MiB."""
    kids = _children_map()
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1])
        except OSError:
            pass
        stack.extend(kids.get(p, []))
    return total * PAGE_MIB


class _TreeSampler(threading.Thread):
    """Samples the subprocess tree's summed RSS until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak = max(self.peak, tree_rss_mib(self.pid))

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak


def run_child(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 1800.0,
    expect_result: bool = True,
    check: bool = True,
) -> dict[str, Any]:
    """Run ``cmd`` in a fresh process (own process group) and measure it from outside.

    Returns the child's emitted JSON (``result``), wall seconds from launch to exit,
    CPU seconds of the child and its reaped descendants, the largest single process's
    peak RSS (``wait4``), the sampled peak of the whole tree's summed RSS, and the
    1-minute load average at launch and at exit.
    """
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        launched = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            cwd=ROOT,
            env=env or child_env(),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        sampler = _TreeSampler(proc.pid)
        sampler.start()
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        tree_peak = sampler.stop()
        # Whatever the child left in its group (e.g. Ray daemons after a crash) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    load_end = os.getloadavg()[0]
    if check and (proc.returncode != 0 or timed_out.is_set()):
        why = f"timed out after {timeout:.0f}s" if timed_out.is_set() else "failed"
        raise ChildFailed(
            f"{' '.join(cmd)} {why} (exit {proc.returncode}); stderr tail:\n{stderr[-3000:]}"
        )
    result = None
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            result = json.loads(line[len(MARKER) :])
    if expect_result and result is None and check:
        raise ChildFailed(f"{' '.join(cmd)} printed no result; stdout tail:\n{stdout[-2000:]}")
    return {
        "result": result,
        "returncode": proc.returncode,
        "launched_at": launched,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_process_rss_mib": usage.ru_maxrss / 1024,
        "tree_peak_rss_mib": tree_peak,
        "load_start": load_start,
        "load_end": load_end,
        "stdout_tail": stdout[-2000:],
        "stderr_tail": stderr[-2000:],
    }


@contextlib.contextmanager
def cpu_hogs(n: int):
    """``n`` busy-looping processes for the duration of the block (a shared machine)."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def python_child(module: str, args: dict[str, Any], **kwargs) -> dict[str, Any]:
    """Run ``python -m <module> '<json args>'`` (the module's child entry point)."""
    return run_child([sys.executable, "-m", module, json.dumps(args)], **kwargs)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max, count and spread ((max - min) / median) of repeated figures."""
    vals = [float(v) for v in values]
    med = statistics.median(vals)
    return {
        "median": med,
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
        "spread_pct": 100.0 * (max(vals) - min(vals)) / med if med else 0.0,
    }


def load_of(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """1-minute load average over a figure's runs: mean of start/end samples, and max."""
    samples = [r["load_start"] for r in runs] + [r["load_end"] for r in runs]
    return {"mean": statistics.fmean(samples), "max": max(samples)}


def fmt(summary: dict[str, float], digits: int = 0, unit: str = "") -> str:
    """``median (min-max, n=N)``, e.g. ``2,345 (2,100-2,600, n=3)``."""
    f = f"{{:,.{digits}f}}"
    if summary["n"] == 1:
        return f"{f.format(summary['median'])}{unit} (n=1)"
    return (
        f"{f.format(summary['median'])}{unit} ({f.format(summary['min'])}-"
        f"{f.format(summary['max'])}, n={summary['n']})"
    )


def fmt_load(load: dict[str, float]) -> str:
    return f"{load['mean']:.1f} (max {load['max']:.1f})"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
