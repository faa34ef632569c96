"""Benchmarks: llmcompiler's engine against the sleep-and-recheck baseline, in one process.

Run ``python -m benchmarks`` from the repository root (``--quick``, ``--only NAME[,NAME]``,
``--json FILE``; ``--help`` lists the workloads). The whole suite takes under three minutes.

How every workload is measured
------------------------------
* The engine ("ours": one ``Engine`` kept open across repetitions, so its threads are warm) and the
  baseline (``llmcompiler.baseline.run_sleep_retry``) run in the same process, alternating: ours,
  baseline, ours, baseline ... (``harness.alternate``). Each variant with state to warm runs once,
  unmeasured, first; a baseline that takes seconds (or hangs) is not warmed up: it builds a fresh
  pool on every call, so there is nothing to warm.
* A run that cannot finish (head-of-line blocking, a swallowed exception) is given a time limit and
  reported as "did not finish in N s"; its ratio to ours is then a lower bound (``>``).
* Each row gives the median, the min-max range and, where there is something to compare with, a ratio
  named by what it divides (``base/ours``, ``ours/floor``). Targets are reported next to the figure
  (met / NOT met), never asserted: the machine is shared and noisy.

Layout
------
    plans.py       the task lists (plain ``Task``s): chains, fans, layers, random DAGs
    tools.py       top-level tool functions (process workers import them by path)
    harness.py     Variant, alternate(), Row, Target, Ratio, timing helpers
    scheduling.py  workloads 1-7: latency, head-of-line, failure, idle CPU, throughput
    processes.py   workloads 8-9: CPU-bound speedup, process dispatch overhead
    stores.py      workload 10: LocalStore versus ManagerStore
    report.py      the table on stdout and the JSON file
    cli.py         argument parsing and the workload registry (``main``)
"""

__all__ = ["main"]


def main(argv=None) -> int:
    """Run the benchmarks (see ``benchmarks.cli.main``); returns the process exit status."""
    from .cli import main as cli_main

    return cli_main(argv)
