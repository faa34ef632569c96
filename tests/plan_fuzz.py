"""A fuzz of the plan parser: mutations of real plan shapes and random byte strings.

The expected outcome of every case: a list of ``Task``s whose arguments are literals, or a
``PlanError`` subclass whose message can be shown. Anything else propagates and fails the caller. Every
fourth case also checks the streaming invariant: the text cut at random points gives the same tasks,
or the same error, as the text parsed whole.

``tests/test_plan.py`` runs a few thousand cases; a long run for ``make stress``::

    python tests/plan_fuzz.py --count 100000

prints a summary: cases, outcomes by kind, the slowest single parse (a figure for the stress table,
never a threshold in a unit test).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Tuple

if __package__ in (None, ""):  # run as a script: the repository root holds llmcompiler
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmcompiler.errors import PlanError  # noqa: E402
from llmcompiler.parser import PlanParser, parse_plan  # noqa: E402
from llmcompiler.plan import Task  # noqa: E402

SEED_PLANS = [
    'Thought: I need both populations before I can compare them.\n1. search("population of Tokyo")\n'
    '2. search(query="population of Paris")\nThought: Now compute the ratio.\n'
    '3. math("ratio of $1 to ${2}", context=[$1, $2])\n4. join()<END_OF_PLAN>\n',
    'Thought: a\r\n1. a("x")\r\n```\n2. b(\n  [$1, """multi\n<END_OF_\nline""",\n  {"k": ${1}}],\n)\n'
    "3. c('$2 and $9 and $1.50', n=-2.5)\njoin()\n4. d()\n",
    "1. a()\n2. b()<END_OF_PLAN>\n3. c()",
    "some prose\n1. search(Austin Powers)\n2. search(Tom's $1 (x))\nmore prose\n3. f(\"y\")",
    '1. a(1, -2.5, None, True, (1,), {"k": [$1]}, s="x")\n2. b($1, "t $1")\n',
    '1. search("q")\n2. fetch($1, n=3, tags=["a", $1])\n3. summarise("about $2", x=-1.5)\n',
]
TOKENS = ["$", "(", ")", '"', "'", '"""', "[", "]", "{", "}", "\n", ",", "=", "$1", "${", "__import__",
          "lambda", "#", "\\", "<END_OF_PLAN>", "join()", "Thought:", "9999999999999999999999", "1.", " ",
          "f'", "*", "**", ":", "-", "\r", "\x00", "é", "```", "0x" + "f" * 5000, "9" * 4400, "1e999",
          "[" * 150, "\udcff", "\x1b", "(y:=1)", "\\\n"]
BYTE_PREFIXES = [b"", b"1. a(", b"1. a()\n2. b(", b"Thought: x\n1. t(", b'1. t("']
LITERAL_TYPES = (str, int, float, bool, type(None), list, tuple, dict)


def mutate(text: str, rng: random.Random) -> str:
    """``text`` with one to four random edits: a token inserted, a slice deleted, a swap, a cut, a character."""
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(text))
        kind = rng.randrange(5)
        if kind == 0:
            text = text[:pos] + rng.choice(TOKENS) + text[pos:]
        elif kind == 1:
            text = text[:pos] + text[pos + rng.randint(1, 5):]
        elif kind == 2 and len(text) > 1:
            other = rng.randrange(len(text))
            chars = list(text)
            chars[pos % len(text)], chars[other] = chars[other], chars[pos % len(text)]
            text = "".join(chars)
        elif kind == 3:
            text = text[:pos]
        else:
            text = text[:pos] + chr(rng.randrange(32, 0x2FF)) + text[pos:]
    return text


def random_bytes_text(rng: random.Random) -> str:
    data = rng.choice(BYTE_PREFIXES) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
    return data.decode("utf-8", rng.choice(["surrogateescape", "replace"]))


def literal_only(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return all(literal_only(item) for item in value)
    if isinstance(value, dict):
        return all(literal_only(key) and literal_only(item) for key, item in value.items())
    return type(value) in LITERAL_TYPES


def outcome(run: Callable[[], List[Task]]) -> Tuple:
    """What a parse gave: ``("ok", tasks as tuples)`` or ``(error type, message, line)``."""
    try:
        return "ok", [(t.idx, t.tool, t.args, t.kwargs, sorted(t.dependencies), t.thought) for t in run()]
    except PlanError as error:
        return type(error).__name__, str(error), error.line


def streamed(text: str, cuts: List[int], **options: object) -> List[Task]:
    parser = PlanParser(**options)  # type: ignore[arg-type]
    tasks, start = [], 0
    for cut in list(cuts) + [len(text)]:
        tasks += parser.feed(text[start:cut])
        start = cut
    return tasks + parser.close()


@dataclass
class FuzzSummary:
    """What a fuzz run saw: counts by outcome and the slowest single parse in seconds."""

    cases: int = 0
    outcomes: Dict[str, int] = field(default_factory=dict)
    slowest: float = 0.0
    stream_checks: int = 0


def fuzz(count: int, seed: int = 20240601) -> FuzzSummary:
    """Run ``count`` cases; returns their ``FuzzSummary``. Raises AssertionError (or whatever escaped
    the parser) at the first case whose outcome is not the expected one."""
    rng = random.Random(seed)
    summary = FuzzSummary()
    for round_ in range(count):
        text = random_bytes_text(rng) if round_ % 10 == 9 else mutate(rng.choice(SEED_PLANS), rng)
        options = {"lenient": round_ % 2 == 1, "known": [1] if round_ % 3 == 0 else ()}
        started = time.perf_counter()
        try:
            tasks = parse_plan(text, **options)  # type: ignore[arg-type]
        except PlanError as error:
            str(error)
            kind = type(error).__name__
        else:
            assert all(type(task) is Task and literal_only((task.args, task.kwargs)) for task in tasks), text
            kind = "tasks"
        summary.slowest = max(summary.slowest, time.perf_counter() - started)
        summary.outcomes[kind] = summary.outcomes.get(kind, 0) + 1
        summary.cases += 1
        if round_ % 4 == 0:
            cuts = sorted(rng.sample(range(len(text) + 1), min(3, len(text) + 1)))
            expected = outcome(lambda: parse_plan(text, **options))  # type: ignore[arg-type]
            assert outcome(lambda: streamed(text, cuts, **options)) == expected, (text, cuts)
            summary.stream_checks += 1
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description="Fuzz the plan parser.")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    started = time.perf_counter()
    summary = fuzz(args.count, args.seed)
    print(f"plan parser fuzz: {summary.cases:,} cases in {time.perf_counter() - started:.1f} s, "
          f"{summary.stream_checks:,} streaming checks, slowest parse {summary.slowest * 1000:.1f} ms")
    for kind, number in sorted(summary.outcomes.items(), key=lambda item: -item[1]):
        print(f"  {kind:24} {number:8,}")


if __name__ == "__main__":
    main()
