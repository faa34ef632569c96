"""Parser fuzz: mutations of real plan shapes, and random bytes, through ``parse_plan`` and the stream.

Every input must give valid tasks or a ``PlanError``; nothing else may escape (a ``RecursionError``, a
``ValueError`` from a huge literal, ...). For a share of the inputs, the streaming ``PlanParser`` is fed
the same text in random chunks and must agree with the whole text: the same tasks, or an error of the
same type on the same line. The slowest single parse is reported.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from llmcompiler import PlanParser, Task, parse_plan
from llmcompiler.errors import PlanError

PARSE_LIMIT = 1.0  # seconds: one parse slower than this is a finding (plans are at most a few KB)

SHAPES = [
    'Thought: look both up.\n1. search("population of Tokyo")\n2. search(query="Paris")\n'
    '3. math("ratio of $1 to ${2}", context=[$1, $2])\n4. join()<END_OF_PLAN>',
    '1. get_weather(city="Tokyo", units=\'metric\')\n2. get_weather("Paris")\n'
    '3. compare($1, $2, keys=["temp", "wind"], weights={"temp": 0.7, "wind": -0.3})\njoin()',
    '```\n1. fetch(url="https://example.org/a?b=1&c=$2")\n2. summarize($1, max_words=50, strict=True)\n```\n',
    '1. search("""multi\nline\nquery""")\n2. extract($1, fields=("name", "age"), default=None)\n'
    '3. lookup(id=-42, scale=1.5e3, ratio=0x1F)\n4. report("found $2 and ${3}: $1.50 each")\njoin()',
    '1. a()\n2. b($1)\n3. c($1, $2)\n4. d([$1, [$2, {"k": ($3,)}]])\n5. e(x=$4)\n',
    "Thought: nothing to do\njoin()",
    '1. echo("a \\"quoted\\" word", \'it\\\'s\', "tab\\there", "back\\\\slash")\n',
    '  7. tool_with_long_name_1(  1 ,  2 , key = "v" )  \n  9. other($7)\n',
]
ALPHABET = list('()[]{}"\'$,.:=\n\\ #*+-_ 0123456789abcxyzJ') + [
    "\x00", "\x07", "\x1b", "\r", "\t", "\u2028", "\ufeff", "\ud800", "\udcff", "\u00e9", "\u4e2d",
    "join()", "<END_OF_PLAN>", "Thought: ", "${", "$1", "$99", "lambda", "__import__", "f'", '"""']
BIG = ["9" * 5000, "0x" + "f" * 5000, "0o" + "7" * 5000, "0b" + "1" * 5000, "1e99999", "[" * 5000,
       "(" * 3000, "-" * 3000 + "1", '{"k": ' * 2000]


class FuzzTally(NamedTuple):
    tried: int
    valid: int
    plan_errors: int
    streamed: int
    crashes: List[str]
    disagreements: List[str]
    slowest: Tuple[float, str]
    seconds: float


def _mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(text) + 1)
        choice = rng.random()
        if choice < 0.25 and text:
            text = text[:at] + text[at + rng.randint(1, 8):]  # delete a run
        elif choice < 0.55:
            text = text[:at] + rng.choice(ALPHABET) + text[at:]  # insert a token
        elif choice < 0.7 and text:
            end = min(len(text), at + rng.randint(1, 40))
            text = text[:end] + text[at:]  # duplicate a slice
        elif choice < 0.8:
            text = text[:at] + rng.choice(BIG) + text[at:]  # a huge literal or deep nesting
        elif choice < 0.9:
            text = text[:at]  # cut short, as a broken stream
        else:
            other = rng.choice(SHAPES)
            text = text[:at] + other[rng.randrange(len(other) + 1):]  # splice two plans
    return text


def _random_bytes(rng: random.Random) -> str:
    raw = rng.randbytes(rng.randint(0, 300))
    if rng.random() < 0.5:
        raw = b"1. t(" + raw + b")\n"
    return raw.decode("utf-8", rng.choice(["surrogateescape", "replace", "ignore"]))


def _outcome(parse: Callable[[], List[Task]]) -> Tuple[str, object]:
    """("tasks", [...]) or ("error", (type name, line)); anything but PlanError propagates."""
    try:
        return "tasks", [(t.idx, t.tool, t.args, t.kwargs, t.dependencies) for t in parse()]
    except PlanError as err:
        return "error", (type(err).__name__, err.line)


def _streamed(rng: random.Random, text: str, lenient: bool) -> List[Task]:
    parser = PlanParser(lenient=lenient)
    tasks: List[Task] = []
    at = 0
    while at < len(text):
        step = rng.randint(1, 40)
        tasks += parser.feed(text[at:at + step])
        at += step
    return tasks + parser.close()


def _one(rng: random.Random, text: str, lenient: bool, stream: bool, tally: Dict[str, list]) -> float:
    started = time.perf_counter()
    try:
        kind, whole = _outcome(lambda: parse_plan(text, lenient=lenient))
    except Exception as err:  # what the fuzz looks for
        tally["crashes"].append(f"{type(err).__name__}: {str(err)[:80]} on {text[:120]!r}")
        return time.perf_counter() - started
    seconds = time.perf_counter() - started
    tally[kind].append(1)
    if stream:
        tally["streamed"].append(1)
        try:
            streamed = _outcome(lambda: _streamed(rng, text, lenient))
        except Exception as err:
            tally["crashes"].append(f"stream: {type(err).__name__}: {str(err)[:80]} on {text[:120]!r}")
        else:
            if streamed != (kind, whole):
                tally["disagreements"].append(f"whole {_short((kind, whole))} but streamed "
                                              f"{_short(streamed)} on {text[:120]!r}")
    return seconds


def _short(outcome: Tuple[str, object]) -> str:
    kind, value = outcome
    return f"{len(value)} tasks" if kind == "tasks" else f"{value[0]} on line {value[1]}"


def run(count: int, seed: int) -> FuzzTally:
    """Parse ``count`` inputs (90 % mutated plans, 10 % random bytes); a fifth also streamed."""
    rng = random.Random(seed)
    tally: Dict[str, list] = {"tasks": [], "error": [], "streamed": [], "crashes": [], "disagreements": []}
    slowest: Tuple[float, str] = (0.0, "")
    started = time.perf_counter()
    for _ in range(count):
        text = _random_bytes(rng) if rng.random() < 0.1 else _mutate(rng, rng.choice(SHAPES))
        seconds = _one(rng, text, rng.random() < 0.2, rng.random() < 0.2, tally)
        if seconds > slowest[0]:
            slowest = (seconds, text[:60])
    return FuzzTally(count, len(tally["tasks"]), len(tally["error"]), len(tally["streamed"]),
                     tally["crashes"], tally["disagreements"], slowest, time.perf_counter() - started)
