"""Speed and memory of the plan forms users pass: Task(...), Task.from_dict and parse_plan.

    python -m benchmarks.plan_speed                       # this tree only
    python -m benchmarks.plan_speed --against /tmp/old    # side by side with another tree holding llmcompiler/

Each measurement runs in a fresh child process (``--child ROOT``), the trees alternated, several
repetitions; the table shows medians and min-max. Memory is ``tracemalloc``'s count of bytes still
allocated per task after building 100,000 tasks from dicts (the input dicts themselves excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc

COUNT = 10_000
MEMORY_COUNT = 100_000


def seed_dicts(count: int) -> list:
    """The seed's dict form in its typical shapes: a fan-out, references, a chain, a join."""
    dicts = []
    for idx in range(1, count + 1):
        kind = idx % 4
        if kind == 0 or idx == 1:
            dicts.append({"idx": idx, "tool_name": "search", "args": {"query": f"q{idx}"}, "dependencies": []})
        elif kind == 1:
            dicts.append({"idx": idx, "tool_name": "fetch", "args": {"url": f"${idx - 1}"},
                          "dependencies": [idx - 1]})
        elif kind == 2:
            dicts.append({"idx": idx, "tool_name": "summarise", "args": {"text": f"about ${idx - 1}", "n": 3},
                          "dependencies": [idx - 1]})
        else:
            dicts.append({"idx": idx, "tool_name": "combine", "args": {"items": [f"${idx - 2}", f"${idx - 1}"]},
                          "dependencies": []})
    return dicts


def plan_text(count: int) -> str:
    lines = []
    for idx in range(1, count + 1):
        kind = idx % 4
        if kind == 0 or idx == 1:
            lines.append(f'{idx}. search("population of city {idx}")')
        elif kind == 1:
            lines.append(f"{idx}. fetch(${idx - 1})")
        elif kind == 2:
            lines.append(f'{idx}. summarise("about ${idx - 1}", n=3)')
        else:
            lines.append(f"{idx}. combine([${idx - 2}, ${idx - 1}], sep=\", \")")
    return "\n".join(lines) + "\njoin()\n"


def best_of(repeats: int, work) -> float:
    """The fastest of ``repeats`` runs of ``work()`` in seconds (the least disturbed by others)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def child() -> dict:
    from llmcompiler.plan import Task, parse_plan, validate_tasks

    dicts = seed_dicts(COUNT)
    text = plan_text(COUNT)
    empty = frozenset()

    def construct():
        for idx in range(1, COUNT + 1):
            Task(idx, "search", (), {"query": "x"}, frozenset((idx - 1,)) if idx > 1 else empty)

    def from_dict():
        for data in dicts:
            Task.from_dict(data)

    figures = {
        "Task(...) us/task": best_of(5, construct) / COUNT * 1e6,
        "Task.from_dict us/task": best_of(5, from_dict) / COUNT * 1e6,
        "validate_tasks(dicts) us/task": best_of(5, lambda: validate_tasks(dicts)) / COUNT * 1e6,
        "parse_plan us/task": best_of(5, lambda: parse_plan(text)) / COUNT * 1e6,
    }
    many = seed_dicts(MEMORY_COUNT)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [Task.from_dict(data) for data in many]
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    figures["from_dict bytes/task (held)"] = (held - sys.getsizeof(tasks)) / len(tasks)
    parsed_text = plan_text(MEMORY_COUNT)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    parsed = parse_plan(parsed_text)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    figures["parse_plan bytes/task (held)"] = (held - sys.getsizeof(parsed)) / len(parsed)
    return figures


def run_child(root: str) -> dict:
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run([sys.executable, __file__, "--child"], env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--against", metavar="ROOT", help="another tree to measure side by side")
    parser.add_argument("--repeat", type=int, default=3, help="child processes per tree (default 3)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child()))
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = {"this tree": here}
    if args.against:
        roots = {"other tree": os.path.abspath(args.against), **roots}
    samples: dict = {name: [] for name in roots}
    for _ in range(args.repeat):
        for name, root in roots.items():  # alternated, so both see the same machine load
            samples[name].append(run_child(root))
    keys = list(samples[next(iter(roots))][0])
    width = max(map(len, keys))
    print(f"{'':{width}}  " + "  ".join(f"{name:>24}" for name in roots))
    for key in keys:
        cells = []
        for name in roots:
            values = [sample[key] for sample in samples[name]]
            cells.append(f"{statistics.median(values):9.2f} ({min(values):.2f}-{max(values):.2f})".rjust(24))
        print(f"{key:{width}}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
