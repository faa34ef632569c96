"""``python -m benchmarks``: the workload registry, the options, and the run loop."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import processes, report, scheduling, stores
from .harness import Config, Workload, load_average

__all__ = ["WORKLOADS", "main"]

# name -> (function, one line for --help), in the order they run.
WORKLOADS: Dict[str, Tuple[Callable[[Config], Workload], str]] = {
    "chain": (scheduling.chain, "10 chained 10 ms sleeps: overhead over 100 ms; one-shot run_tasks"),
    "fanout": (scheduling.fan_out, "50 parallel 20 ms sleeps -> one fan-in task, 50 workers"),
    "layers": (scheduling.layers, "5 layers x 8 sleeps of 5 ms, all-to-all between layers, 8 workers"),
    "hol": (scheduling.head_of_line, "head-of-line: 40 tasks wait on task 41, listed after them"),
    "failure": (scheduling.failure, "a failing task with 100 dependents: skip latency"),
    "idle": (scheduling.idle, "CPU used while 20 tasks wait on a 3 s sleep"),
    "throughput": (scheduling.throughput, "10,000 no-ops in a random DAG vs plain pool.submit"),
    "cpu": (processes.cpu_bound, "8 x 0.3 s of pure Python: serial / threads / processes"),
    "process": (processes.process_dispatch, "no-op process tools (chain, fan-out) vs ProcessPoolExecutor"),
    "store": (stores.store_cost, "set+get of a small and a 1 MB observation: LocalStore vs ManagerStore"),
}


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<11} {text}" for name, (_, text) in WORKLOADS.items())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure llmcompiler's engine against the sleep-retry baseline, in one process, "
                    "alternating repetitions. Targets are reported, never asserted.",
        epilog=f"workloads, in the order they run:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and smaller sizes (a smoke test, not a measurement)")
    parser.add_argument("--only", metavar="NAME[,NAME]", type=_names,
                        help="run only these workloads (comma-separated)")
    parser.add_argument("--json", metavar="FILE", help="also write every raw sample and summary to FILE")
    parser.add_argument("--reps", type=int, metavar="N",
                        help="repetitions of each variant (default 5, or 2 with --quick)")
    return parser


def _names(text: str) -> List[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload {', '.join(unknown) or repr(text)}; choose from {', '.join(WORKLOADS)}")
    return names


def _run_one(name: str, config: Config) -> Workload:
    """Run one workload; an exception becomes the workload's ``error`` (the suite goes on)."""
    function, text = WORKLOADS[name]
    load = load_average()
    started = time.perf_counter()
    try:
        workload = function(config)
    except Exception:  # any failure of the code under test is reported, with its traceback
        workload = Workload(name, text, error=traceback.format_exc())
    workload.seconds = time.perf_counter() - started
    workload.load = load
    return workload


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the selected workloads, print the table, optionally write JSON.

    Returns 0, or 1 when a workload raised (its error is printed and recorded). Targets missed do
    not change the exit status.
    """
    args = _parser().parse_args(argv)
    if args.reps is not None and args.reps < 1:
        _parser().error("--reps must be at least 1")
    config = Config(quick=args.quick, reps=args.reps or (2 if args.quick else 5))
    argv_list = list(sys.argv[1:] if argv is None else argv)
    meta = report.metadata(config, argv_list)
    report.emit(report.header(meta))
    started = time.perf_counter()
    workloads = []
    for name in args.only or list(WORKLOADS):
        workload = _run_one(name, config)
        workloads.append(workload)
        report.emit(report.workload_lines(workload))
        if workload.error is not None:
            sys.stderr.write(workload.error)
    seconds = time.perf_counter() - started
    report.emit(report.summary_lines(workloads, seconds))
    if args.json:
        report.write_json(args.json, meta, workloads, seconds)
    return 1 if any(w.error is not None for w in workloads) else 0
