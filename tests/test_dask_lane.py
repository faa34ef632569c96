"""ExecutorLane on a real Dask cluster (two worker processes on 127.0.0.1). Skipped without
``distributed``; ``make test-dask`` runs it in an environment that has it."""

from __future__ import annotations

import threading
import time

import pytest

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed here")

from llmcompiler.remote import ExecutorLane  # noqa: E402

import faults_fixture_tools as fx  # noqa: E402

WAIT = 120


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    made = distributed.Client(cluster)
    yield made
    made.close()
    cluster.close()


@pytest.fixture(autouse=True)
def no_leaks():
    """Dask keeps its own threads for the module's cluster; this file checks outcomes, not threads."""
    yield


def test_calls_on_a_dask_cluster_come_back_as_outcomes(client):
    lane = ExecutorLane(client.get_executor(pure=False), "dask")
    before = time.perf_counter()
    results = [lane.submit("faults_fixture_tools:square", (n,), {}) for n in range(6)]
    failed = lane.submit(fx.fail, ("on the cluster",), {}).result(WAIT)
    outcomes = [future.result(WAIT) for future in results]
    after = time.perf_counter()
    assert [o.value for o in outcomes] == [n * n for n in range(6)]
    assert all(before - 0.01 <= o.started <= o.finished <= after + 0.01 for o in outcomes)
    assert all(o.worker.startswith("dask-") for o in outcomes)
    assert isinstance(failed.error, ValueError) and "on the cluster" in failed.traceback


def test_a_running_dask_call_is_abandoned_on_cancel_and_the_lane_goes_on(client):
    lane = ExecutorLane(client.get_executor(pure=False), "dask")
    future = lane.submit("faults_fixture_tools:nap", (2, "late"), {})
    deadline = time.monotonic() + WAIT
    while not any(client.processing().values()):  # the scheduler has handed it to a worker
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert future.cancel() and future.cancelled()
    assert lane.submit("faults_fixture_tools:square", (9,), {}).result(WAIT).value == 81
