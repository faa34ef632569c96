"""Tools served by a Dask cluster: ``Engine(tools, executors={"cluster": client.get_executor()})``.

Run by ``make test-dask`` (an environment of its own with ``distributed``); in the normal suite every
test here is skipped, saying so. The cluster is real: ``LocalCluster(processes=True, n_workers=2)``,
every address on 127.0.0.1.

What differs from the engine's own process pool: a Dask worker is not ours to kill. A call past its
timeout, or of a cancelled run, is *abandoned*: its task fails (or is cancelled) at once and the run
goes on, but the call itself runs to its end on the worker, whose result is then dropped.
"""

from __future__ import annotations

import os
import time

import pytest

distributed = pytest.importorskip(
    "distributed", reason="distributed is not installed; `make test-dask` runs these tests in .venv-dask")

from llmcompiler import Engine, ToolRegistry, parse_plan  # noqa: E402

import dask_fixture_tools as fx  # noqa: E402

WAIT = 60


@pytest.fixture(autouse=True)
def no_leaks():
    """The cluster is the module's and lives across tests (its nanny restarts a dead worker with
    threads of its own in this process): here only the engine's own threads must be gone."""
    yield
    import threading
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ours = [t for t in threading.enumerate() if t.name.startswith("llmcompiler") and t.is_alive()]
        if not ours:
            return
        time.sleep(0.05)
    assert not ours, f"engine threads left behind: {ours}"


@pytest.fixture(scope="module")
def client():
    import dask

    # One rerun after a worker death (Dask's default is 3): the death test stays short.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                           host="127.0.0.1", dashboard_address=None)
    dask_client = distributed.Client(cluster)
    try:
        dask_client.get_executor().submit(fx.add, 1, 1).result(timeout=WAIT)  # warm: lazy threads start
        yield dask_client
    finally:
        dask_client.close()
        cluster.close()


def cluster_tools(**options) -> ToolRegistry:
    registry = ToolRegistry()
    for func in (fx.add, fx.describe, fx.fail, fx.where, fx.nap_then_mark, fx.wait_for_file, fx.kill_worker):
        registry.register(func, executor="cluster", **options.get(func.__name__, {}))
    registry.register(lambda x: x + 1, name="inc")  # a thread tool, in the same runs
    return registry


def engine_on(client, **options) -> Engine:
    return Engine(cluster_tools(**options), executors={"cluster": client.get_executor()})


def test_the_cluster_starts_and_its_executor_runs_calls(client):
    executor = client.get_executor()
    assert executor.submit(fx.add, 2, 3).result(timeout=WAIT) == 5
    assert executor.submit(fx.where).result(timeout=WAIT) != os.getpid()  # in a worker process
    assert all(address.startswith("tcp://127.0.0.1:") for address in client.scheduler_info()["workers"])


def test_a_plan_runs_on_the_cluster_with_references(client):
    plan = '1. add(1, 2)\n2. add($1, 10)\n3. inc($2)\n4. describe("got $3", $1, [$2])\n5. where()'
    with engine_on(client) as engine:
        result = engine.run(plan, timeout=WAIT)
    assert {i: result.observations[i] for i in range(1, 5)} == {1: 3, 2: 13, 3: 14, 4: "got 14 | 3 | [13]"}
    assert result.observations[5] != os.getpid() and not result.failures


def test_a_raising_tool_fails_its_task_and_its_dependents_skip(client):
    plan = '1. add(1, 1)\n2. fail("no such city")\n3. inc($2)\n4. describe($3, $1)\n5. add($1, 5)'
    with engine_on(client) as engine:
        result = engine.run(plan, timeout=WAIT)
    assert result.observations == {1: 2, 5: 7}
    failure = result.failures[2]
    assert (failure.kind, failure.error_type, failure.message) == ("failed", "ValueError", "no such city")
    assert {i: (f.kind, f.cause) for i, f in result.failures.items() if i != 2} == {
        3: ("skipped", 2), 4: ("skipped", 2)}


def test_a_timeout_fails_the_task_and_abandons_the_remote_call(client, tmp_path):
    marker = tmp_path / "finished"
    plan = f"1. nap_then_mark(2, {str(marker)!r})\n2. inc($1)\n3. add(2, 3)"
    with engine_on(client, nap_then_mark={"timeout": 0.3}) as engine:
        result = engine.run(plan, timeout=WAIT)
        assert not marker.exists()  # the run ended while the remote call still ran
    assert result.failures[1].kind == "timeout" and result.failures[2].kind == "skipped"
    assert result.observations == {3: 5}
    deadline = time.monotonic() + WAIT  # abandoned, not killed: the call finishes on its worker
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "finished"


def test_cancel_ends_the_run_and_keeps_what_was_observed(client, tmp_path):
    go = tmp_path / "go"
    with engine_on(client) as engine:
        run = engine.start(parse_plan(f"1. add(1, 2)\n2. wait_for_file({str(go)!r}, {WAIT})\n3. inc($2)"))
        run.close()
        seen = set()
        for event in run:  # a remote call's start is stamped there and known when it ends
            seen.add((event.kind, event.task))
            if {("finished", 1), ("submitted", 2)} <= seen:
                break
        run.cancel()
        result = run.wait(WAIT)
        go.touch()  # the abandoned remote call returns, freeing its worker
    assert result.cancelled and result.observations == {1: 3}
    assert {i: f.kind for i, f in result.failures.items()} == {2: "cancelled", 3: "cancelled"}
    assert client.get_executor().submit(fx.add, 4, 4).result(timeout=WAIT) == 8  # the cluster serves on


def test_a_worker_death_is_rerun_by_dask_then_fails_the_task_with_killed_worker(client):
    with engine_on(client) as engine:
        result = engine.run("1. kill_worker()\n2. inc($1)\n3. add(2, 2)", timeout=WAIT)
    failure = result.failures[1]
    assert failure.kind == "failed" and failure.error_type == "KilledWorker"
    assert result.failures[2].kind == "skipped" and result.observations == {3: 4}
    assert client.get_executor().submit(fx.add, 4, 4).result(timeout=WAIT) == 8  # its nanny restarted it


def test_the_engine_never_imports_dask_itself():
    import subprocess
    import sys

    code = ("import sys, llmcompiler; from llmcompiler import Engine, run_tasks; "
            "run_tasks('1. f(1)', {'f': lambda x: x}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]
