"""The common sleep-and-recheck task fetching unit, kept as written, to measure against.

This is the scheduler found in the widely copied LLMCompiler examples, reproduced so that benchmarks can
run it side by side with ``llmcompiler``'s engine. It is deliberately *not* improved.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Union

from .errors import RunTimeoutError
from .plan import Task

__all__ = ["run_sleep_retry"]

_ID_PATTERN = r"\$\{?(\d+)\}?"


def run_sleep_retry(
    tasks: Iterable[Union[Task, Mapping[str, Any]]],
    tools: Mapping[str, Callable[..., Any]],
    *,
    retry_after: float = 0.2,
    max_workers: Optional[int] = None,
    timeout: Optional[float] = None,
) -> Dict[int, Any]:
    """Run tasks the way the common example does; return ``{idx: observation}``.

    The algorithm, unchanged: walk the tasks in list order; a task whose dependencies all have
    observations is submitted to a ``ThreadPoolExecutor`` directly; any other task is submitted as a
    *waiter* that loops ``sleep(retry_after)`` until its dependencies appear in a shared, unlocked
    ``observations`` dict, then runs. Arguments are a dict whose string values are replaced by an
    observation when they *start with* ``$N``/``${N}`` (``re.match``); nothing else is resolved.

    Its known flaws, which is why it is the baseline:

    * every dependency level costs up to ``retry_after`` (0.2 s) of pure waiting;
    * waiters occupy pool threads while they sleep: when they fill the pool, a dependency queued behind
      them never runs and the run hangs for ever (head-of-line blocking);
    * idle waiters wake every ``retry_after`` seconds and burn CPU doing nothing;
    * a tool's exception is swallowed by its future; its dependents then wait for ever;
    * ``"$1 and more"`` is replaced by the whole observation (prefix match), and references inside
      strings, lists or dicts are never resolved;
    * the shared dict is written without a lock.

    ``tasks`` may be a generator, such as a plan being parsed as it streams: each task is submitted as it
    is yielded, and the ``timeout`` counts from the last one.

    The only changes: it returns the observations, accepts ``Task`` objects as well as dicts, and gives
    up after ``timeout`` seconds with ``RunTimeoutError`` (a ``TimeoutError``) instead of hanging; on
    time-out, the waiters are told to stop so that no thread outlives the call for long.
    """
    # Taken one at a time: a generator (a plan being streamed) has each task submitted as it is
    # yielded, as the original's task fetching unit takes the planner's stream.
    seed_tasks = (_seed_form(task) for task in tasks)
    observations: Dict[int, Any] = {}
    stop = threading.Event()  # added: lets waiters give up after a time-out

    def resolve_arg(arg_value: Any) -> Any:
        if isinstance(arg_value, str):
            match = re.match(_ID_PATTERN, arg_value)
            if match:
                return observations.get(int(match.group(1)))
        return arg_value

    def schedule_task(task: Dict[str, Any]) -> None:
        args = [resolve_arg(value) for value in task["positional"]]
        kwargs = {name: resolve_arg(value) for name, value in task["args"].items()}
        observation = tools[task["tool_name"]](*args, **kwargs)
        observations[task["idx"]] = observation

    def schedule_pending_task(task: Dict[str, Any]) -> None:
        while not stop.is_set():
            deps = task["dependencies"]
            if deps and any(dep not in observations for dep in deps):
                time.sleep(retry_after)
                continue
            schedule_task(task)
            break

    executor = ThreadPoolExecutor(max_workers)
    futures = []
    all_futures = []
    try:
        for task in seed_tasks:
            if any(dep not in observations for dep in task["dependencies"]):
                futures.append(executor.submit(schedule_pending_task, task))
            else:
                all_futures.append(executor.submit(schedule_task, task))
        all_futures += futures
        # The original waits on the waiters, then the executor's exit waits on everything.
        _, not_done = wait(all_futures, timeout=timeout)
        if not_done:
            raise RunTimeoutError(
                f"the sleep-retry scheduler did not finish within {timeout} s "
                f"({len(not_done)} tasks still waiting or running)")
        return dict(observations)
    finally:
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)


def _seed_form(task: Union[Task, Mapping[str, Any]]) -> Dict[str, Any]:
    """The seed's dict form, plus the positional arguments a ``Task`` may carry (resolved by the same
    rule as keyword ones; the seed has only keyword arguments)."""
    if isinstance(task, Task):
        data = task.to_dict()
    else:
        data = dict(task)
        data.setdefault("dependencies", [])
    args = data.get("args", {})
    data["positional"] = list(data.get("positional", ()))
    if not isinstance(args, Mapping):
        data["positional"], args = list(args), {}
    data["args"] = dict(args)
    return data
