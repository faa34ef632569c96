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
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO

from .harness import Config, Ratio, Row, Workload, load_average

__all__ = ["metadata", "header", "workload_lines", "summary_lines", "targets", "write_json", "emit"]

_COLUMNS = "  {:<40} {:>2}  {:>11}  {:<17}  {:<16}  {}"


def _code_fingerprint() -> str:
    """sha256 (12 hex digits) of llmcompiler's sources, to tell which code a figure belongs to."""
    import llmcompiler

    digest = hashlib.sha256()
    for path in sorted(Path(llmcompiler.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def metadata(config: Config, argv: List[str]) -> Dict[str, Any]:
    """Where and when the figures were taken."""
    from .processes import usable_cpus

    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "date": now.isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "llmcompiler_sources_sha256": _code_fingerprint(),
        "argv": argv,
        "load_average_1min": load_average(),
        "quick": config.quick,
        "reps": config.reps,
    }


def header(meta: Dict[str, Any]) -> List[str]:
    """The lines above the table."""
    mode = "quick" if meta["quick"] else "full"
    return [
        f"llmcompiler benchmarks, {meta['date']}  ({mode}: {meta['reps']} repetitions each, alternating)",
        f"Python {meta['python']} ({meta['implementation']}), {meta['cpu_count']} CPUs "
        f"({meta['usable_cpus']} usable), load {meta['load_average_1min']}, {meta['platform']}",
        f"llmcompiler sources sha256 {meta['llmcompiler_sources_sha256']}; load = 1-minute load average "
        "(other work on this machine); ratios are of medians",
        "",
        _COLUMNS.format("variant", "n", "median", "min-max", "ratio", "target"),
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
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def _ratio(ratio: Optional[Ratio]) -> str:
    if ratio is None:
        return ""
    return f"{ratio.label} {'>' if ratio.lower_bound else ''}{_number(ratio.value)}"


def _target(row: Row) -> str:
    if row.target is None:
        return row.reference
    verdict = "met" if row.target.met(row.median) else "NOT met"
    return f"{row.target.text}: {verdict}"


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
    line = _COLUMNS.format(row.variant, len(row.samples), middle, spread, _ratio(row.ratio), _target(row))
    return line.rstrip()


def workload_lines(workload: Workload) -> List[str]:
    """A workload's section: its title line, then one line per row (or its error)."""
    lines = ["", f"{workload.name}: {workload.title}  [{workload.seconds:.1f} s, load {workload.load}]"]
    if workload.error is not None:
        lines.append(f"  ERROR: {workload.error.strip().splitlines()[-1]}")
    lines += [_row_line(row) for row in workload.rows]
    return lines


def targets(workloads: List[Workload]) -> Dict[str, List[str]]:
    """``{"met": [...], "missed": [...]}``: the rows with a target, by ``workload: variant``."""
    found: Dict[str, List[str]] = {"met": [], "missed": []}
    for workload in workloads:
        for row in workload.rows:
            if row.target is not None:
                key = "met" if row.target.met(row.median) else "missed"
                found[key].append(f"{workload.name}: {row.variant}")
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
                               "error": w.error, "rows": [row.to_json() for row in w.rows]}
                      for w in workloads},
    }
    with open(path, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=1, allow_nan=False, default=str)
        out.write("\n")


def emit(lines: List[str], stream: TextIO = sys.stdout) -> None:
    """Print lines at once (the suite is long; show progress as it goes)."""
    stream.write("\n".join(lines) + "\n")
    stream.flush()
