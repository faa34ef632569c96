"""Example tools and a scripted planner and joiner, for ``python -m llmcompiler demo`` and for tests.

The tools stand in for real ones. ``population``, ``growth_rate``, ``search`` and ``weather`` sleep as
a network call would (``LATENCY`` seconds) and return canned facts; ``simulate_growth`` and
``count_primes`` are CPU-bound pure Python and are registered with ``executor="process"``, so they
must stay top-level functions of this module: a worker process imports them by path
(``llmcompiler.examples:simulate_growth``). ``calculate`` and ``add`` are quick arithmetic.

Each tool measures itself: when the environment variable ``LLMCOMPILER_DEMO_TIMES`` names a file, every
call appends one line ``tool<TAB>start<TAB>end<TAB>pid`` to it (``time.perf_counter()`` seconds, the
same clock as the engine's events, in worker processes too), so the figures the demo prints can be
checked against the tools' own clocks (``measured_calls``). Set it before the engine starts its
worker processes: they inherit the environment.

``DEMO_RESPONSES`` is what the demo's model says: a plan, a joiner asking for a new plan (one task
of the first plan fails on purpose), a second plan that continues the numbering and reuses earlier
observations, and the joiner's final answer. ``demo_llm()`` replays them with ``ScriptedLLM``.

Importing this module starts nothing.
"""

from __future__ import annotations

import ast
import contextlib
import operator
import os
import random
import re
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Union

from .llm import ScriptedLLM
from .tools import ToolRegistry

__all__ = ["LATENCY", "population", "growth_rate", "search", "weather", "simulate_growth", "count_primes",
           "calculate", "add", "example_registry", "DEMO_QUESTION", "DEMO_RESPONSES", "demo_llm",
           "TIMES_VARIABLE", "MeasuredCall", "measured_calls"]

LATENCY = 0.3  # seconds each I/O-like tool sleeps
TIMES_VARIABLE = "LLMCOMPILER_DEMO_TIMES"


class MeasuredCall(NamedTuple):
    """One call of an example tool, by its own clock (``time.perf_counter()``)."""

    tool: str
    start: float
    end: float
    pid: int


@contextlib.contextmanager
def _measured(tool: str) -> Iterator[None]:
    """Time the body; append the call to the file named by ``TIMES_VARIABLE``, if set (even when the
    body raises). One ``os.write`` of one short line on an ``O_APPEND`` file: lines from several
    processes never interleave."""
    path = os.environ.get(TIMES_VARIABLE)
    start = time.perf_counter()
    try:
        yield
    finally:
        if path:
            line = f"{tool}\t{start!r}\t{time.perf_counter()!r}\t{os.getpid()}\n".encode()
            handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(handle, line)
            finally:
                os.close(handle)


def measured_calls(path: str) -> List[MeasuredCall]:
    """The calls recorded in ``path`` (see the module docstring), in the order written.
    Raises OSError when the file cannot be read, ValueError when a line is not a record."""
    with open(path, encoding="utf-8") as file:
        rows = [line.rstrip("\n").split("\t") for line in file if line.strip()]
    return [MeasuredCall(tool, float(start), float(end), int(pid)) for tool, start, end, pid in rows]

_POPULATIONS = {"tokyo": 13_960_000, "paris": 2_102_650, "london": 8_866_180, "new york": 8_335_897}
_GROWTH_RATES = {"tokyo": -0.002, "paris": 0.003, "london": 0.008, "new york": -0.004}
_WEATHER = {"tokyo": "light rain, 18 degrees C", "paris": "sunny, 22 degrees C",
            "london": "overcast, 15 degrees C", "new york": "clear, 20 degrees C"}
_FACTS = [
    "Tokyo is the capital of Japan; about 13.96 million people live in the city proper.",
    "Paris is the capital of France; about 2.1 million people live in the city proper.",
    "London is the capital of the United Kingdom; about 8.9 million people live there.",
    "New York City is the most populous city of the United States, with about 8.3 million people.",
    "Mount Everest is 8,849 m tall; the Eiffel Tower is 330 m tall.",
]


def _city(name: str, table: Dict[str, Any], what: str) -> Any:
    key = " ".join(name.lower().split())
    if key not in table:
        known = ", ".join(sorted(city.title() for city in table))
        raise LookupError(f"no {what} for {name!r}; known cities: {known} (give the city name alone)")
    return table[key]


def population(city: str) -> int:
    """The number of people living in a city (city proper, latest estimate)."""
    with _measured("population"):
        time.sleep(LATENCY)
        return _city(city, _POPULATIONS, "population data")


def growth_rate(city: str) -> float:
    """A city's yearly population growth rate, as a fraction (0.004 means +0.4 % a year)."""
    with _measured("growth_rate"):
        time.sleep(LATENCY)
        return _city(city, _GROWTH_RATES, "growth rate")


def search(query: str) -> str:
    """Search an encyclopedia; returns the best matching fact."""
    with _measured("search"):
        time.sleep(LATENCY)
        words = set(re.findall(r"\w+", query.lower())) - {"the", "of", "a", "is", "in", "how", "what"}
        scored = [(len(words & set(re.findall(r"\w+", fact.lower()))), fact) for fact in _FACTS]
        score, fact = max(scored)
        return fact if score else f"No results for {query!r}."


def weather(city: str) -> str:
    """Today's weather in a city."""
    with _measured("weather"):
        time.sleep(LATENCY)
        return _city(city, _WEATHER, "weather report")


def simulate_growth(population: int, annual_rate: float, years: int, trials: int = 20000,
                    seed: int = 0) -> int:
    """Project a population ``years`` ahead by Monte Carlo simulation of its yearly growth around
    ``annual_rate``; returns the mean projected population. CPU-bound: runs in a worker process."""
    with _measured("simulate_growth"):
        gauss = random.Random(seed).gauss
        total = 0.0
        for _ in range(trials):
            value = float(population)
            for _ in range(years):
                value *= 1.0 + gauss(annual_rate, 0.005)
            total += value
        return round(total / trials)


def count_primes(n: int) -> int:
    """How many prime numbers are below ``n`` (by trial division: slow on purpose, CPU-bound)."""
    with _measured("count_primes"):
        return _count_primes(n)


def _count_primes(n: int) -> int:
    count = 0
    for candidate in range(2, n):
        divisor = 2
        while divisor * divisor <= candidate:
            if candidate % divisor == 0:
                break
            divisor += 1
        else:
            count += 1
    return count


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
              ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression: numbers, + - * / // % ** and parentheses. Returns the value
    rounded to 4 decimals."""
    with _measured("calculate"):
        try:
            tree = ast.parse(expression.replace(",", ""), mode="eval")
        except SyntaxError:
            raise ValueError(f"not an arithmetic expression: {expression!r}") from None
        return round(_evaluate(tree.body, expression), 4)


def _evaluate(node: ast.AST, expression: str) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left, expression), _evaluate(node.right, expression)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError(f"exponent too large in {expression!r}")
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand, expression))
    raise ValueError(f"only numbers and + - * / // % ** ( ) are allowed, in {expression!r}")


def add(a: float, b: float) -> float:
    """Add two numbers."""
    with _measured("add"):
        return a + b


def example_registry() -> ToolRegistry:
    """A new registry of this module's tools; the CPU-bound ones run in worker processes."""
    registry = ToolRegistry()
    for func in (population, growth_rate, weather, search):
        registry.register(func)
    registry.register(simulate_growth, executor="process")
    registry.register(count_primes, executor="process")
    registry.register(calculate)
    registry.register(add)
    return registry


# -- the demo's script ------------------------------------------------------------------------------

DEMO_QUESTION = ("Tokyo or Paris: which city will have more people in 2050, and how many times more? "
                 "And what is the weather in each city today?")

_PLAN_1 = """\
Thought: Populations, growth rates and weather are independent lookups: run them all at once.
1. population("Tokyo")
2. population("Paris, France")
3. growth_rate("Tokyo")
4. growth_rate("Paris")
5. weather("Tokyo")
6. weather("Paris")
Thought: Project each population 27 years ahead, to 2050. The simulations are CPU-heavy.
7. simulate_growth($1, $3, 27)
8. simulate_growth($2, $4, 27)
join()<END_OF_PLAN>
"""

_JOIN_1 = """\
Thought: Tokyo's projection (task 7) and both weather reports are in, but task 2 failed: population() \
wants the city name alone. So Paris's projection (task 8) was skipped.
Action: Replan(Paris's population is missing: task 2 failed on "Paris, France". Retry with "Paris" and \
reuse the growth rate of task 4 and Tokyo's projection of task 7.)
"""

_PLAN_2 = """\
Thought: Tasks 4 and 7 already hold Paris's growth rate and Tokyo's projection; only Paris is redone.
9. population("Paris")
10. simulate_growth($9, $4, 27)
Thought: Then compare the two projections.
11. calculate("$7 / $10")
join()<END_OF_PLAN>
"""

_JOIN_2 = """\
Thought: Tokyo is projected at about 13.2 million people in 2050 and Paris at about 2.3 million, \
a ratio of about 5.8.
Action: Finish(Tokyo will still have more people in 2050: about 13.2 million against 2.3 million in \
Paris (projections by simulating each city's yearly growth), about 5.8 times more. \
Today it is light rain and 18 degrees C in Tokyo, and sunny and 22 degrees C in Paris.)
"""

DEMO_RESPONSES = (_PLAN_1, _JOIN_1, _PLAN_2, _JOIN_2)


def _pieces(text: str, size: int) -> List[str]:
    return [text[start:start + size] for start in range(0, len(text), size)]


def demo_llm(delay: float = 0.02) -> ScriptedLLM:
    """A ``ScriptedLLM`` replaying ``DEMO_RESPONSES``: plans in 8-character chunks (about two tokens,
    so lines arrive piece by piece), joiner answers in larger ones; ``delay`` seconds before each."""
    responses: List[Union[str, List[str]]] = []
    for number, text in enumerate(DEMO_RESPONSES):
        responses.append(_pieces(text, 8 if number % 2 == 0 else 48))
    return ScriptedLLM(responses, delay=delay)
