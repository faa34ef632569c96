"""The ``make stress`` harness, at toy sizes: its cases run, and its serial reference can fail."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

from stress import dags, fuzz, resources  # noqa: E402

from llmcompiler import Engine  # noqa: E402
from llmcompiler.results import TaskFailure  # noqa: E402


def quiet_seeds(count: int):
    """The first seeds whose DAGs have no stalling tool (the harness itself is under test here)."""
    seeds = (seed for seed in range(1, 500) if not any(t.tool.startswith("stall") for t in dags.draw(seed, 60).tasks))
    return [next(seeds) for _ in range(count)]


def test_random_dags_match_the_serial_reference_at_toy_sizes():
    tally = dags.Tally()
    for seed in quiet_seeds(6):
        dags.run_one(dags.draw(seed, 60), tally)
    assert tally.tried == 6 and tally.outcomes == {"match": 6}, tally.problems


def test_the_reference_comparison_catches_each_kind_of_difference():
    dag = next(d for d in map(lambda seed: dags.draw(seed, 60), quiet_seeds(20))
               if len(dags.reference(d.tasks).observations) >= 3)
    expected = dags.reference(dag.tasks)
    with Engine(dags.registry(), max_workers=dag.workers, process_workers=1) as engine:
        result = engine.run(dag.tasks, timeout=60)
    assert dags.compare(result, expected) is None
    some = min(result.observations)
    result.observations[some] += 1
    assert "observations differ" in dags.compare(result, expected)
    result.observations[some] -= 1
    result.failures[some] = TaskFailure(some, "node_t", "timeout")
    del result.observations[some]
    assert dags.compare(result, expected) is not None


def test_the_fuzz_reports_counts_and_the_slowest_parse():
    tally = fuzz.run(300, seed=5)
    assert tally.tried == 300 == tally.valid + tally.plan_errors + len(tally.crashes)
    assert tally.crashes == [] and tally.disagreements == []
    assert 0 < tally.slowest[0] < fuzz.PARSE_LIMIT


def test_holdings_count_this_process_threads_and_descriptors():
    before = resources.holdings()
    read, write = os.pipe()
    try:
        assert resources.holdings().fds == before.fds + 2
    finally:
        os.close(read)
        os.close(write)
    assert before.threads >= 1 and before.rss_bytes > 0
