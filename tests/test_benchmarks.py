"""Smoke tests for the benchmark suite (``python -m benchmarks``): it runs, prints, writes valid JSON.

The suite runs in a subprocess with a time limit, so a hang fails the test instead of the whole run,
and no thread or process of the benchmark can outlive it in the test process.
"""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import plans  # noqa: E402
from benchmarks.harness import Row, Target, ratio_of  # noqa: E402

ROW_KEYS = {"variant", "unit", "samples", "median", "min", "max", "did_not_finish", "limit_s", "per",
            "ratio", "target", "reference", "note"}


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_quick_run_writes_json_with_every_sample(tmp_path):
    out = tmp_path / "bench.json"
    done = _run("--quick", "--only", "chain,fanout", "--json", str(out), timeout=20)
    assert done.returncode == 0, done.stderr
    assert "chain:" in done.stdout and "fanout:" in done.stdout
    assert "baseline: sleep-retry" in done.stdout
    document = json.loads(out.read_text())
    assert {"meta", "seconds", "targets", "workloads"} <= set(document)
    assert {"date", "python", "cpu_count", "quick", "reps"} <= set(document["meta"])
    assert document["meta"]["quick"] is True
    assert list(document["workloads"]) == ["chain", "fanout"]
    for name, workload in document["workloads"].items():
        assert workload["error"] is None, name
        assert workload["rows"], name
        for row in workload["rows"]:
            assert set(row) == ROW_KEYS, (name, row["variant"])
            assert len(row["samples"]) == document["meta"]["reps"], (name, row["variant"])
    chain = {row["variant"]: row for row in document["workloads"]["chain"]["rows"]}
    ours = chain["ours: Engine.run (warm)"]
    assert 90 < ours["median"] < 1000  # ten 10 ms sleeps, in ms
    assert chain["baseline: sleep-retry"]["ratio"]["label"] == "base/ours"
    assert chain["ours: overhead over 100 ms"]["target"]["met"] in (True, False)


def test_help_lists_the_workloads():
    done = _run("--help", timeout=10)
    assert done.returncode == 0
    for name in ("chain", "fanout", "layers", "hol", "failure", "idle", "throughput", "cpu", "process",
                 "store"):
        assert f"  {name} " in done.stdout


def test_unknown_workload_is_refused_by_name():
    done = _run("--only", "chain,nope", timeout=10)
    assert done.returncode == 2
    assert "unknown workload nope" in done.stderr


def test_random_dag_is_seeded_and_points_backwards():
    first, second = plans.random_dag(300, seed=7), plans.random_dag(300, seed=7)
    assert [t.dependencies for t in first] == [t.dependencies for t in second]
    assert all(len(t.dependencies) <= 3 and all(d < t.idx for d in t.dependencies) for t in first)
    assert any(t.dependencies for t in first)


def test_a_run_that_did_not_finish_gives_a_lower_bound_ratio():
    ours = Row("ours", "ms", [10.0, 12.0, 11.0])
    baseline = Row("baseline", "ms", [None, None, 500.0], limit=2.0)
    assert math.isinf(baseline.median)
    ratio = ratio_of("base/ours", baseline, ours)
    assert ratio.lower_bound and ratio.value == pytest.approx(2000.0 / 11.0)
    assert not Target("<=", 1.0, "<= 1 ms").met(baseline.median)
    assert baseline.to_json()["median"] is None and baseline.to_json()["did_not_finish"] == 2
