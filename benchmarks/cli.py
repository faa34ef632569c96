"""``python -m benchmarks``: the workload registry, the options, and the run loop."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import concurrency, e2e_sweep, endtoend, latency, processes, report, scheduling, stores, throughput
from .harness import Config, Workload, load_average

__all__ = ["WORKLOADS", "main"]

# name -> (function, one line for --help), in the order they run.
WORKLOADS: Dict[str, Tuple[Callable[[Config], Workload], str]] = {
    "throughput": (throughput.throughput, "random DAG of no-ops as dicts, plan text, Tasks; 100 to 100,000"),
    "memory": (throughput.memory, "peak bytes per task, and memory held after the run, 100,000 dicts"),
    "latency": (latency.latency, "warm Engine vs one-shot run_tasks: 1 task, chain, fan-out, 500 x 1 ms"),
    "firsttask": (concurrency.first_task, "plan line parsed -> its task started, fresh engine, first run"),
    "layers": (scheduling.layers, "5 layers x 8 sleeps of 5 ms, all-to-all between layers, 8 workers"),
    "hol": (scheduling.head_of_line, "head-of-line: 40 tasks wait on task 41, listed after them"),
    "failure": (scheduling.failure, "a failing task with 100 dependents: skip latency"),
    "idle": (scheduling.idle, "CPU used while 20 tasks wait on a 3 s sleep"),
    "process": (processes.process_dispatch, "2,000 no-op process tasks; 10 x 10 ms process chain"),
    "cpu": (processes.cpu_bound, "8 x 0.3 s of pure Python: serial / threads / processes"),
    "runs": (concurrency.many_runs, "1, 8, 32 concurrent runs of a 6-task plan on one engine"),
    "onevent": (concurrency.slow_on_event, "tool start times with an on_event taking 0.1 s per event"),
    "store": (stores.store_cost, "set+get of a small and a 1 MB observation: LocalStore vs ManagerStore"),
    "e2e": (endtoend.end_to_end, "scripted LLM + tools: ReAct vs plan-then-run vs streamed (ours, baseline)"),
    "e2e-sweep": (e2e_sweep.end_to_end_sweep, "the e2e question at 3 model paces x 3 tool spans; 3 other plans"),
    "cache": (endtoend.replan_cache, "a replan repeating earlier calls: cacheable tool vs not"),
    "priority": (endtoend.priority, "mixed latencies, few workers: priority='time' vs 'count'"),
}


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<11} {text}" for name, (_, text) in WORKLOADS.items())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure llmcompiler's engine against a textbook event-driven scheduler, dask's "
                    "threaded scheduler (when installed) and the sleep-retry baseline, in one process, "
                    "alternating repetitions. Targets are reported, never asserted.",
        epilog=f"workloads, in the order they run:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and smaller sizes, under a minute (a smoke test, not a "
                             "measurement)")
    parser.add_argument("--tiny", action="store_true",
                        help="the smallest sizes, one repetition: checks that every workload runs (the test "
                             "suite's mode; its figures mean nothing)")
    parser.add_argument("--only", metavar="NAME[,NAME]", type=_names,
                        help="run only these workloads (comma-separated)")
    parser.add_argument("--json", metavar="FILE", help="also write every raw sample and summary to FILE")
    parser.add_argument("--plots", metavar="DIR",
                        help="also write SVG charts to DIR (scale curve, makespans, end to end)")
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
    config = Config(quick=args.quick or args.tiny, tiny=args.tiny,
                    reps=args.reps or (1 if args.tiny else 2 if args.quick else 5))
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
    report.emit(report.table_lines(workloads))
    report.emit(report.summary_lines(workloads, seconds))
    if args.json:
        report.write_json(args.json, meta, workloads, seconds)
    if args.plots:
        from .plots import write_plots

        for path in write_plots(args.plots, meta, workloads):
            report.emit([f"wrote {path}"])
    return 1 if any(w.error is not None for w in workloads) else 0
