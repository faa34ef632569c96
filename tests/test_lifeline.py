"""Nothing outlives its parent: real scripts in subprocesses, killed or left to exit on their own."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llmcompiler.mainguard import _guarded_spans

TESTS = Path(__file__).parent
REPO = TESTS.parent
WAIT = 60

PRELUDE = f"""
import json, os, sys, time
sys.path[:0] = [{str(REPO)!r}, {str(TESTS)!r}]
"""


def start_script(tmp_path: Path, body: str, *args: str, as_module: bool = False) -> subprocess.Popen:
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    how = ["-m", "script"] if as_module else [str(script)]
    return subprocess.Popen([sys.executable, *how, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def read_line(process: subprocess.Popen) -> str:
    ready, _, _ = select.select([process.stdout], [], [], WAIT)
    assert ready, "the script printed nothing"
    line = process.stdout.readline()
    assert line, f"the script ended early: {process.stderr.read()}"
    return line


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie nobody reaped yet has exited too)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


LIFELINE_SCRIPT = """
from llmcompiler.executors import Pools, process_context
from llmcompiler.store import ManagerStore

if __name__ == "__main__":
    method = sys.argv[1]
    pools = Pools(process_workers=2, start_method=method)
    generation, _ = pools.submit_process(1, "faults_fixture_tools:nap", (600,), {})
    pools.submit_process(2, "faults_fixture_tools:square", (2,), {})[1].result(60)
    deadline = time.monotonic() + 60
    while not (generation.pid_of(1) and all(generation.pids)) and time.monotonic() < deadline:
        time.sleep(0.01)
    store = ManagerStore(process_context(method))
    store.namespace().set(1, "observed")
    from multiprocessing import forkserver
    print(json.dumps({"workers": list(generation.pids), "busy": generation.pid_of(1),
                      "manager": store.manager_process.pid,
                      "forkserver": forkserver._forkserver._forkserver_pid,
                      "preload": forkserver._forkserver._preload_modules}), flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn", "fork"])
def test_every_worker_and_the_manager_exit_within_2_s_of_the_parents_death(tmp_path, method):
    script = start_script(tmp_path, LIFELINE_SCRIPT, method)
    try:
        pids = json.loads(read_line(script))
    finally:
        script.kill()
        script.wait(WAIT)
        script.stdout.close()
        script.stderr.close()
    killed = time.monotonic()
    children = set(pids["workers"]) | {pids["manager"]}
    assert len(children) == 3 and pids["busy"] in children and 0 not in children
    if method == "forkserver":
        children.add(pids["forkserver"])  # the standard library's own: it has a lifeline of its own
        assert pids["preload"] == ["llmcompiler.executors"]  # never "__main__": no script re-run there
    while not all(gone(pid) for pid in children) and time.monotonic() - killed < 2:
        time.sleep(0.01)
    assert [pid for pid in children if not gone(pid)] == []


EXIT_SCRIPT = """
from llmcompiler import Engine, ToolRegistry
from llmcompiler.plan import Task
import faults_fixture_tools as fx

if __name__ == "__main__":
    tools = ToolRegistry()
    tools.register(fx.nap, executor="process")
    engine = Engine(tools, process_workers=1)  # never closed
    run = engine.start([Task(1, "nap", (600,))])
    deadline = time.monotonic() + 60
    while True:  # until a worker is running the call (whatever events say about it)
        generation = engine._pools._process
        if generation is not None and generation.running_tokens():
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    print(json.dumps(list(generation.running_tokens().values())), flush=True)
"""


def test_an_engine_never_closed_does_not_hold_the_interpreter_open_on_a_busy_worker(tmp_path):
    script = start_script(tmp_path, EXIT_SCRIPT)
    try:
        workers = json.loads(read_line(script))
        out, err = script.communicate(timeout=WAIT)  # the worker's call would take 600 s
    finally:
        script.kill()
        script.communicate()
    assert script.returncode == 0, err
    assert workers and all(gone(pid) for pid in workers)


IMPORTS = """
from llmcompiler import Engine, ToolRegistry
from llmcompiler.plan import Task
import faults_fixture_tools as fx
"""
RUN = """
tools = ToolRegistry()
tools.register(fx.square, executor="process")
tools.register(lambda x: x + 1, name="inc")
with Engine(tools, start_method=sys.argv[1]) as engine:
    result = engine.run([Task(1, "square", (3,)), Task(2, "inc", (1,)), Task(3, "inc", ("$2",))])
print(json.dumps({"observations": result.observations, "failures": {
    i: [f.error_type, f.message] for i, f in result.failures.items()}}))
"""
UNGUARDED_SCRIPT = IMPORTS + RUN
GUARDED_SCRIPT = IMPORTS + 'if __name__ == "__main__":\n' + textwrap.indent(RUN, "    ")


@pytest.mark.parametrize("method,as_module", [("forkserver", False), ("spawn", False), ("spawn", True)])
def test_an_unguarded_script_fails_its_process_task_in_one_line_and_runs_its_thread_tasks(
        tmp_path, method, as_module):
    script = start_script(tmp_path, UNGUARDED_SCRIPT, method, as_module=as_module)
    out, err = script.communicate(timeout=WAIT)
    assert script.returncode == 0, err
    report = json.loads(out)
    assert report["observations"] == {"2": 2, "3": 3}
    assert list(report["failures"]) == ["1"]
    error, message = report["failures"]["1"]
    assert error == "ProcessStartError"
    lines = (tmp_path / "script.py").read_text().split("\n")
    line = next(n for n, text in enumerate(lines, 1) if text.startswith("    result = engine.run("))
    assert "\n" not in message and f"script.py:{line}: this script starts worker processes" in message
    assert "if __name__ == \"__main__\":" in message and "executor=\"thread\"" in message
    assert "semaphore" not in err and "bootstrapping" not in err and err == ""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_the_same_script_under_its_guard_runs_its_process_task(tmp_path, method):
    script = start_script(tmp_path, GUARDED_SCRIPT, method)
    out, err = script.communicate(timeout=WAIT)
    assert script.returncode == 0, err
    assert json.loads(out) == {"observations": {"1": 9, "2": 2, "3": 3}, "failures": {}}


def test_guarded_spans_follow_the_code_not_the_text(tmp_path):
    source = tmp_path / "guards.py"
    source.write_text(textwrap.dedent("""\
        import os
        if __name__ == "__main__":
            run()
        if "__main__" != __name__:
            pass
        else:
            run()
            run()
        if __name__ == "__other__":
            run()
        text = 'if __name__ == "__main__":'
        """))
    assert _guarded_spans(str(source)) == [(3, 3), (7, 8)]
    assert _guarded_spans(str(tmp_path / "missing.py")) is None


def test_a_packages_unguarded_main_run_with_dash_m_is_not_refused(tmp_path):
    """``python -m package`` runs ``package/__main__.py``, which multiprocessing never re-imports in a
    worker: its top-level code may start process tools without the guard."""
    package = tmp_path / "unguardedpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(PRELUDE + IMPORTS + RUN.replace("sys.argv[1]", '"forkserver"'))
    done = subprocess.run([sys.executable, "-m", "unguardedpkg"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failures"] == {} and report["observations"] == {"1": 9, "2": 2, "3": 3}
