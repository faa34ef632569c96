"""``python -m stress``: run the cases, print the summary table, exit 1 on any finding."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Sequence, Tuple

from . import big, dags, fuzz, soak

FULL = {"dags": 1000, "dag_size": 2000, "big": 100_000, "soak": 500, "fuzz": 100_000}
QUICK = {"dags": 100, "dag_size": 2000, "big": 10_000, "soak": 50, "fuzz": 10_000}
CASES = ("fuzz", "soak", "big", "dags")

Row = Tuple[str, str, str, str, bool]  # case, tried, outcomes, figures, ok


def _dags(sizes: dict, seed: int) -> Tuple[Row, List[str]]:
    tally = dags.run(sizes["dags"], sizes["dag_size"], seed)
    outcomes = ", ".join(f"{count} {name}" for name, count in sorted(tally.outcomes.items()))
    seconds, slow_seed, slow_size = tally.slowest
    figures = (f"{tally.tasks:,} tasks in {tally.seconds:.0f} s; faults injected: "
               f"{tally.faults['failed']} raised, {tally.faults['timeout']} timed out, "
               f"{tally.faults['worker-died']} worker deaths; slowest DAG {seconds:.1f} s "
               f"(seed {slow_seed}, {slow_size} tasks)")
    ok = tally.outcomes.get("match", 0) == tally.tried
    return (f"random DAGs vs serial reference", f"{tally.tried:,}", outcomes, figures, ok), tally.problems


def _big(sizes: dict, seed: int) -> Tuple[Row, List[str]]:
    result = big.run(sizes["big"], seed)
    figures = (f"{result.seconds:.1f} s ({result.seconds / result.tasks * 1e6:.0f} us/task); peak "
               f"{result.peak_bytes_per_task:,.0f} B/task; retained after the result is dropped "
               f"{result.retained_bytes_per_task:,.0f} B/task")
    outcome = "completed" if result.completed else "incomplete"
    return (f"{result.tasks:,}-task DAG", "1", outcome, figures, result.completed), (
        [result.problem] if result.problem else [])


def _soak(sizes: dict, seed: int) -> Tuple[Row, List[str]]:
    result = soak.run(sizes["soak"], seed)
    start, end, peak = result.after_warm_up, result.at_end, result.peak
    mib = 1 << 20
    figures = (f"after warm-up -> end (peak): threads {start.threads} -> {end.threads} ({peak.threads}), "
               f"child processes {start.children} -> {end.children} ({peak.children}), open fds "
               f"{start.fds} -> {end.fds} ({peak.fds}), sockets "
               f"{start.sockets} -> {end.sockets} ({peak.sockets}), RSS {start.rss_bytes / mib:.1f} -> "
               f"{end.rss_bytes / mib:.1f} MiB ({peak.rss_bytes / mib:.1f}); {result.seconds:.0f} s")
    # Both ends are measured after a collection (a retired pool's pipe may close only then), so descriptors
    # other than sockets grew when the end holds more than the warm-up did. Sockets are the manager
    # store's connections, one per thread that has used it (workers come to it at any run): they grew
    # when more are open than threads are alive.
    grew = [name for name in ("threads", "children") if getattr(end, name) > getattr(start, name)]
    if end.fds > start.fds:
        grew.append("fds")
    if end.sockets > end.threads:
        grew.append(f"sockets ({end.sockets}, with {end.threads} threads)")
    if end.rss_bytes > start.rss_bytes + 32 * mib:
        grew.append("memory (over 32 MiB)")
    problems = result.mismatches + ([f"grew: {', '.join(grew)}"] if grew else [])
    outcome = f"{result.runs - len(result.mismatches)} matched" + (f"; grew: {', '.join(grew)}" if grew else
                                                                    "; no growth")
    return (f"consecutive runs, one engine", f"{result.runs:,}", outcome, figures, not problems), problems


def _fuzz(sizes: dict, seed: int) -> Tuple[Row, List[str]]:
    result = fuzz.run(sizes["fuzz"], seed)
    outcome = (f"{result.valid:,} valid, {result.plan_errors:,} PlanError, {len(result.crashes)} other "
               f"errors; {result.streamed:,} streamed, {len(result.disagreements)} disagreed")
    slowest, text = result.slowest
    figures = f"slowest parse {slowest * 1000:.1f} ms ({text!r}); {result.seconds:.0f} s"
    problems = result.crashes + result.disagreements
    if slowest > fuzz.PARSE_LIMIT:
        problems.append(f"a parse took {slowest:.2f} s (limit {fuzz.PARSE_LIMIT} s) on {text!r}")
    return ("parser fuzz", f"{result.tried:,}", outcome, figures, not problems), problems


RUNNERS = {"dags": _dags, "big": _big, "soak": _soak, "fuzz": _fuzz}


def _table(rows: Sequence[Row]) -> str:
    header = ("case", "tried", "outcomes", "figures", "ok")
    cells = [header] + [(case, tried, outcome, figures, "yes" if ok else "NO")
                        for case, tried, outcome, figures, ok in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = []
    for number, row in enumerate(cells):
        lines.append(" | ".join(cell.ljust(width) for cell, width in zip(row, widths + [2])))
        if number == 0:
            lines.append("-+-".join("-" * width for width in widths + [2]))
    return "\n".join(lines)


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="sizes about ten times smaller")
    parser.add_argument("--only", choices=CASES, action="append", help="run only this case (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rows: List[Row] = []
    findings: List[str] = []
    started = time.perf_counter()
    for case in args.only or CASES:
        print(f"stress: {case} ...", file=sys.stderr, flush=True)
        row, problems = RUNNERS[case](sizes, args.seed)
        rows.append(row)
        findings += [f"{case}: {problem}" for problem in problems]
    print(_table(rows))
    print(f"\n{len(rows)} cases in {time.perf_counter() - started:.0f} s on {os.cpu_count()} CPUs"
          f"{' (--quick)' if args.quick else ''}")
    for finding in findings[:40]:
        print(f"  finding: {finding}")
    if len(findings) > 40:
        print(f"  ... and {len(findings) - 40} more")
    return 1 if findings else 0
