"""The workloads' task lists, as plain ``Task``s (built here, run elsewhere).

Dependencies are written the way a planner writes them: as ``$N`` arguments, so the engine resolves
them and the baseline (which resolves only arguments that start with ``$N``) sees the same plan. The
random DAG comes in the three input forms users pass: ``Task``s, seed-form dicts and plan text.
"""

from __future__ import annotations

import random
from typing import Any, List, Sequence

from llmcompiler.plan import Task

__all__ = ["chain", "fan_out_in", "layers", "head_of_line", "failing_root", "idle_wait", "random_dag",
           "random_dag_dicts", "random_dag_text", "independent"]


def _refs(indices: Sequence[int]) -> tuple:
    return tuple(f"${idx}" for idx in indices)


def chain(length: int, tool: str, *args: Any) -> List[Task]:
    """``length`` calls of ``tool(*args)``, each also taking the previous one's observation."""
    tasks = [Task(1, tool, args)]
    tasks += [Task(idx, tool, (*args, f"${idx - 1}")) for idx in range(2, length + 1)]
    return tasks


def fan_out_in(width: int, seconds: float) -> List[Task]:
    """``width`` parallel sleeps, then one ``gather`` whose arguments reference all of them."""
    tasks = [Task(idx, "sleep", (seconds,)) for idx in range(1, width + 1)]
    tasks.append(Task(width + 1, "gather", _refs(range(1, width + 1))))
    return tasks


def layers(depth: int, width: int, seconds: float) -> List[Task]:
    """``depth`` layers of ``width`` sleeps; each task references every task of the layer before."""
    tasks: List[Task] = []
    previous: Sequence[int] = ()
    for layer in range(depth):
        current = range(layer * width + 1, (layer + 1) * width + 1)
        tasks += [Task(idx, "sleep", (seconds, *_refs(previous))) for idx in current]
        previous = current
    return tasks


def head_of_line(waiters: int, blocker_seconds: float) -> List[Task]:
    """``waiters`` no-ops on task ``waiters + 1``, listed before it (it sleeps ``blocker_seconds``)."""
    blocker = waiters + 1
    tasks = [Task(idx, "noop", _refs([blocker])) for idx in range(1, waiters + 1)]
    tasks.append(Task(blocker, "sleep", (blocker_seconds,)))
    return tasks


def failing_root(dependents: int) -> List[Task]:
    """Task 1 raises; tasks 2..dependents+1 reference it, so all of them must be skipped."""
    return [Task(1, "fail")] + [Task(idx, "noop", ("$1",)) for idx in range(2, dependents + 2)]


def idle_wait(waiters: int, seconds: float) -> List[Task]:
    """Task 1 sleeps ``seconds``; ``waiters`` no-ops wait on it."""
    return [Task(1, "sleep", (seconds,))] + [Task(idx, "noop", ("$1",)) for idx in range(2, waiters + 2)]


def _random_edges(size: int, seed: int, max_dependencies: int) -> List[List[int]]:
    """For task i (1-based), 0..``max_dependencies`` distinct earlier tasks drawn uniformly."""
    rng = random.Random(seed)
    edges = []
    for idx in range(1, size + 1):
        count = rng.randint(0, min(max_dependencies, idx - 1))
        edges.append(sorted(rng.sample(range(1, idx), count)))
    return edges


def random_dag(size: int, seed: int, max_dependencies: int = 3, tool: str = "noop") -> List[Task]:
    """``size`` ``Task``s of ``tool``; task i takes ``$N`` arguments for 0..``max_dependencies`` tasks
    drawn uniformly from 1..i-1 (``random.Random(seed)``: the same DAG on every run, in every form)."""
    return [Task(idx, tool, _refs(deps))
            for idx, deps in enumerate(_random_edges(size, seed, max_dependencies), start=1)]


def random_dag_dicts(size: int, seed: int, max_dependencies: int = 3, tool: str = "noop") -> List[dict]:
    """The same DAG as ``random_dag``, as seed-form dicts: ``$N`` values under ``args`` (keyword
    arguments ``a0``, ``a1`` ...) and the same indices under ``dependencies``."""
    return [{"idx": idx, "tool_name": tool, "args": {f"a{n}": f"${dep}" for n, dep in enumerate(deps)},
             "dependencies": deps}
            for idx, deps in enumerate(_random_edges(size, seed, max_dependencies), start=1)]


def random_dag_text(size: int, seed: int, max_dependencies: int = 3, tool: str = "noop") -> str:
    """The same DAG as ``random_dag``, as plan text (``7. noop($2, $5)``), ending with ``join()``."""
    lines = [f"{idx}. {tool}({', '.join(_refs(deps))})"
             for idx, deps in enumerate(_random_edges(size, seed, max_dependencies), start=1)]
    return "\n".join(lines) + f"\n{size + 1}. join()\n"


def independent(count: int, tool: str, *args: Any) -> List[Task]:
    """``count`` tasks with no dependencies, all calling ``tool(*args)``."""
    return [Task(idx, tool, args) for idx in range(1, count + 1)]


def mixed_latency(unit: float) -> List[Task]:
    """Where ordering by task count misleads: a chain of 2 ``slow`` tasks of 10 units each, two
    chains of 6 ``quick`` tasks of 1 unit, and 6 independent ``quick`` fillers (tools ``slow`` and
    ``quick`` are both ``sleep``, registered under two names so that each has its own mean)."""
    tasks = [Task(1, "slow", (10 * unit,)), Task(2, "slow", (10 * unit, "$1"))]
    idx = 3
    for _ in range(2):
        first = idx
        tasks.append(Task(idx, "quick", (unit,)))
        for idx in range(first + 1, first + 6):
            tasks.append(Task(idx, "quick", (unit, f"${idx - 1}")))
        idx += 1
    tasks += [Task(n, "quick", (unit,)) for n in range(idx, idx + 6)]
    return tasks
