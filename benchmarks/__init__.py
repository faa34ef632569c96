"""Benchmarks: llmcompiler's engine against a textbook event-driven scheduler, dask's threaded
scheduler (when installed) and the sleep-retry baseline, in one process.

Run ``python -m benchmarks`` from the repository root (about ten minutes on two cores; ``--quick``
under a minute; ``--only NAME[,NAME]``; ``--json FILE``; ``--plots DIR``; ``--help`` lists the
workloads). ``benchmarks/README.md`` explains each workload and gives the latest figures.

How every workload is measured
------------------------------
* The engines run in the same process, alternating: ours, yardstick, dask, baseline, ours ...
  (``harness.alternate``), at least five repetitions each (two with ``--quick``). Each variant with
  state to warm runs once, unmeasured, first; a collection runs before every repetition.
* "ours" is one ``Engine`` kept open across repetitions (warm) unless a line says "cold"
  (``run_tasks``). The yardstick is ``yardstick.run_textbook``: dependency counters and
  ``add_done_callback`` on a ``ThreadPoolExecutor`` (or a ``ProcessPoolExecutor`` for process tools),
  about 60 lines. Each engine converts its input itself, inside the timing.
* A run that cannot finish (the baseline's head-of-line blocking, a swallowed exception) gets a time
  limit and is reported as "did not finish in N s"; its ratio is then a lower bound (``>``).
* Every row gives the median and the min-max range; the summary table gives one line per measure:
  the medians per engine, one ratio of medians, the target and whether it is met. Targets are
  reported, never asserted: the machine is shared and noisy.

Layout
------
    plans.py        the plans: chains, fans, layers, random DAGs in three input forms
    tools.py        top-level tool functions (process workers import them by path)
    yardstick.py    the textbook event-driven scheduler, its front ends, dask's threaded scheduler
    harness.py      Variant, alternate(), Row, Line, Target, Ratio, timing helpers
    throughput.py   us per task on dicts, plan text and Tasks, 100 to 100,000 tasks; memory
    latency.py      warm Engine against one-shot run_tasks on four small plans
    scheduling.py   layered latency, head-of-line blocking, failure skipping, idle CPU
    processes.py    process dispatch, a process chain, CPU-bound speedup
    concurrency.py  first-task latency, many runs on one engine, a slow on_event
    stores.py       LocalStore against ManagerStore
    endtoend.py     a scripted model and tools: ReAct, plan-then-run, streamed; cache; priority
    e2e_sweep.py    the end-to-end question at every model pace and tool span; other plan shapes
    report.py       the table on stdout and the JSON file
    plots.py        the SVG charts
    cli.py          argument parsing and the workload registry (``main``)
"""

__all__ = ["main"]


def main(argv=None) -> int:
    """Run the benchmarks (see ``benchmarks.cli.main``); returns the process exit status."""
    from .cli import main as cli_main

    return cli_main(argv)
