"""``make stress``: long, seeded, bounded checks of the engine's promises, with a summary table.

Cases (``python -m stress [--quick] [--only NAME] [--seed N]``):

* ``dags``: seeded random DAGs (1 to 2,000 tasks; thread and process tools mixed; 1 to 32 thread workers;
  random failures, timeouts and worker deaths), each compared with a plain serial reference: the same
  observations, the same failed (and how) and skipped sets, each skip caused by a failed ancestor.
* ``big``: one 100,000-task DAG: it completes; peak and retained memory per task (``tracemalloc``).
* ``soak``: 500 consecutive runs on one engine: threads, child processes, open file descriptors and
  resident memory after the warm-up and at the end.
* ``fuzz``: 100,000 mutations of real plan shapes and random byte strings through ``parse_plan`` and
  ``PlanParser`` (in random chunks): only ``PlanError`` or valid tasks, the stream agrees with the whole
  text, and the slowest parse.

``--quick`` scales every size down about tenfold. The exit status is 1 when any case found a problem.
"""
