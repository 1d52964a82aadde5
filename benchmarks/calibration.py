"""Gate calibration and power as a benchmark: benchmarks.gate_calibration in a fresh process.

Only with ``benchmarks.run --with-calibration``: 60 seeds of each null, 10 seeds of the
overnight structure at two executions and a power table of 10 seeds per cell (planted
annual Sharpe x years of pooled test evidence), each instrument a whole walk-forward
procedure: about 1,700 trainings, hours on 2 cores. It resumes from the JSONL of
instruments already judged (benchmarks/gate_calibration.jsonl).
"""

import sys
from pathlib import Path
from typing import Any

from benchmarks import gate_calibration, harness

KEPT_NOTE = (
    "_Not measured by the run named at the top: kept from the calibration run named below "
    "(`benchmarks.run` reruns it only with `--with-calibration`)._"
)


def child(args: dict[str, Any]) -> None:
    out = gate_calibration.main(args["argv"])
    harness.emit(out)


def run(quick: bool) -> dict[str, Any]:
    argv = ["--quick"] if quick else []
    print(
        f"  gate calibration and power: {' '.join(argv) or 'defaults'} ...",
        file=sys.stderr,
        flush=True,
    )
    proc = harness.python_child("benchmarks.calibration", {"argv": argv}, timeout=4 * 3600)
    return {**proc["result"], "process_wall_s": proc["wall_s"]}


def markdown(r: dict[str, Any]) -> str:
    return gate_calibration.markdown(r)


def previous_section(results_md: Path) -> list[str]:
    """The section an earlier calibration run left in ``results_md`` (it names its own
    command and date), so a run without ``--with-calibration`` keeps it."""
    text = results_md.read_text() if results_md.exists() else ""
    kept = gate_calibration.section_of(text)
    if kept:
        title = gate_calibration.SECTION_TITLE
        body = kept[len(title) :].lstrip("\n").replace(KEPT_NOTE + "\n\n", "", 1)
        return [title, "", KEPT_NOTE, "", body.rstrip("\n"), ""]
    return [
        gate_calibration.SECTION_TITLE,
        "",
        "Not run: pass `--with-calibration` (hours; resumable), or run "
        "`python -m benchmarks.gate_calibration --results-md benchmarks/RESULTS.md`.",
        "",
    ]


if __name__ == "__main__":
    import json

    child(json.loads(sys.argv[1]))
