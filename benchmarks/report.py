"""The readable table (stdout) and the JSON file (every raw sample and every summary).

Numbers are printed in each row's unit: ``ms``, ``us``, ``s``, ``x`` (a ratio) or ``ms/s`` (CPU
milliseconds per second of wall time). A run that did not finish prints "did not finish in N s".
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO

from .harness import COLUMNS, Config, Ratio, Row, Workload, load_average

__all__ = ["metadata", "header", "workload_lines", "table_lines", "summary_lines", "git_commit", "cpu_model", "targets", "write_json", "emit"]

_COLUMNS = "  {:<40} {:>2}  {:>11}  {:<17}  {:<16}  {}"


def _code_fingerprint() -> str:
    """sha256 (12 hex digits) of llmcompiler's sources, to tell which code a figure belongs to."""
    import llmcompiler

    digest = hashlib.sha256()
    for path in sorted(Path(llmcompiler.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def git_commit() -> Optional[str]:
    """The checked-out commit of the repository the benchmarks run from (with ``+dirty`` when files
    differ from it), or None outside a git work tree."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def cpu_model() -> Optional[str]:
    """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()`` or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for text in info:
                if text.startswith("model name"):
                    return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def metadata(config: Config, argv: List[str]) -> Dict[str, Any]:
    """Where and when the figures were taken."""
    from .processes import usable_cpus
    from .yardstick import dask_available

    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "date": now.isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "git_commit": git_commit(),
        "dask": dask_available(),
        "usable_cpus": usable_cpus(),
        "llmcompiler_sources_sha256": _code_fingerprint(),
        "argv": argv,
        "load_average_1min": load_average(),
        "quick": config.quick,
        "tiny": config.tiny,
        "reps": config.reps,
    }


def header(meta: Dict[str, Any]) -> List[str]:
    """The lines above the table."""
    mode = "tiny" if meta.get("tiny") else "quick" if meta["quick"] else "full"
    return [
        f"llmcompiler benchmarks, {meta['date']}  ({mode}: {meta['reps']} repetitions each, alternating)",
        f"Python {meta['python']} ({meta['implementation']}), {meta['cpu_count']} CPUs "
        f"({meta['usable_cpus']} usable, {meta['cpu_model']}), load {meta['load_average_1min']}, "
        f"{meta['platform']}",
        f"commit {meta['git_commit']}; llmcompiler sources sha256 {meta['llmcompiler_sources_sha256']}; "
        "load = 1-minute load average (other work on this machine); ratios are of medians",
        "dask " + (meta["dask"] + ": its threaded scheduler is the 'dask' column" if meta["dask"] else
                   "is not installed: the 'dask' column is skipped (make bench-dask runs it)"),
        "",
        _COLUMNS.format("variant", "n", "median", "min-max", "ratio", "note"),
    ]


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.995:
        return f"{value:.2f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    if abs(value) < 0.01:
        return "<0.01" if value > 0 else ">-0.01"
    return f"{value:.2g}"


def _ratio(ratio: Optional[Ratio]) -> str:
    if ratio is None:
        return ""
    return f"{ratio.label} {'>' if ratio.lower_bound else ''}{_number(ratio.value)}"




def _row_line(row: Row) -> str:
    finished = row.finished
    median = row.median
    if math.isfinite(median):
        middle = f"{_number(median)} {row.unit}"
        low, high = (min(finished), max(finished)) if finished else (0.0, 0.0)
        dash = " to " if low < 0 else "-"
        spread = f"{_number(low)}{dash}{_number(high)}" if len(finished) > 1 else ""
        if row.did_not_finish:
            spread += f" ({row.did_not_finish} DNF)"
    else:
        limit = _number(row.limit) if row.limit is not None else "?"
        partial = f", {len(finished)}/{len(row.samples)} did" if finished else ""
        middle, spread = "", f"did not finish in {limit} s{partial}"
    line = _COLUMNS.format(row.variant, len(row.samples), middle, spread, _ratio(row.ratio),
                           row.reference or row.note)
    return line.rstrip()


def workload_lines(workload: Workload) -> List[str]:
    """A workload's section: its title line, then one line per row (or its error)."""
    lines = ["", f"{workload.name}: {workload.title}  [{workload.seconds:.1f} s, load {workload.load}]"]
    if workload.error is not None:
        lines.append(f"  ERROR: {workload.error.strip().splitlines()[-1]}")
    lines += [f"  skipped: {reason}" for reason in workload.skipped]
    lines += [_row_line(row) for row in workload.rows]
    return lines


_TABLE = "{:<10} {:<40} {:>9} {:>9} {:>9} {:>9} {:<13} {:<16} {}"


def _cell(row: Optional[Row]) -> str:
    if row is None:
        return "-"
    median = row.median
    if math.isfinite(median):
        return _number(median)
    return f">{_number(row.limit)}s" if row.limit is not None else "DNF"


def table_lines(workloads: List[Workload]) -> List[str]:
    """The summary table: one line per measure; medians; the ratio; the target and its verdict."""
    lines = ["", "summary (medians; units in the 'measure' column; ratio = first column / second)",
             _TABLE.format("workload", "measure", *COLUMNS, "ratio", "target", "met")]
    for workload in workloads:
        for item in workload.lines:
            verdict = {None: "", True: "met", False: "NOT met"}[item.met()]
            lines.append(_TABLE.format(
                workload.name[:10], f"{item.what} ({item.unit})"[:40],
                *[_cell(item.cells.get(column)) for column in COLUMNS],
                _ratio(item.ratio), item.target.text if item.target else "", verdict).rstrip())
        lines += [f"{workload.name[:10]:<10} skipped: {reason}" for reason in workload.skipped]
    return lines


def targets(workloads: List[Workload]) -> Dict[str, List[str]]:
    """``{"met": [...], "missed": [...]}``: the rows with a target, by ``workload: variant``."""
    found: Dict[str, List[str]] = {"met": [], "missed": []}
    for workload in workloads:
        for item in workload.lines:
            if item.target is not None:
                found["met" if item.met() else "missed"].append(f"{workload.name}: {item.what}")
    return found


def summary_lines(workloads: List[Workload], seconds: float) -> List[str]:
    """The lines below the table: targets met and missed, errors, total time."""
    found = targets(workloads)
    lines = ["", f"targets: {len(found['met'])} met, {len(found['missed'])} not met"]
    lines += [f"  not met: {name}" for name in found["missed"]]
    lines += [f"  error in {w.name}" for w in workloads if w.error is not None]
    lines.append(f"total {seconds:.1f} s; load at the end {load_average()}")
    return lines


def write_json(path: str, meta: Dict[str, Any], workloads: List[Workload], seconds: float) -> None:
    """Every raw sample and summary, as JSON (non-finite numbers become null)."""
    document = {
        "meta": meta,
        "seconds": seconds,
        "targets": targets(workloads),
        "load_average_1min_at_end": load_average(),
        "workloads": {w.name: {"title": w.title, "params": w.params, "seconds": w.seconds, "load": w.load,
                               "error": w.error, "skipped": w.skipped,
                               "rows": [row.to_json() for row in w.rows],
                               "lines": [item.to_json() for item in w.lines]}
                      for w in workloads},
    }
    with open(path, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=1, allow_nan=False, default=str)
        out.write("\n")


def emit(lines: List[str], stream: TextIO = sys.stdout) -> None:
    """Print lines at once (the suite is long; show progress as it goes)."""
    stream.write("\n".join(lines) + "\n")
    stream.flush()
