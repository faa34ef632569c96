"""Measurement machinery: alternating repetitions, rows of samples, targets and ratios.

A workload builds ``Variant``s (one callable per thing measured, returning ``{metric: seconds}``),
lets ``alternate`` run them in turn, then turns the samples into ``Row``s. A sample of ``None`` means
"did not finish within the row's ``limit``". Samples are stored in the row's display unit.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

from llmcompiler.baseline import run_sleep_retry
from llmcompiler import Engine, RunResult, run_tasks

__all__ = ["Config", "BenchmarkError", "Variant", "alternate", "Target", "Ratio", "Row", "Line", "line",
           "COLUMNS", "Workload", "Measured", "run_ours", "run_one_shot", "run_baseline", "timed", "scaled",
           "per_task", "load_average", "paired", "ratio_of", "SCALE"]

SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6, "x": 1.0, "ms/s": 1.0, "B": 1.0, "MB": 1.0, "runs/s": 1.0, "%": 1.0}


class BenchmarkError(Exception):
    """A run did not produce what its workload expects (the figure would be meaningless)."""


@dataclass(frozen=True)
class Config:
    """How much to measure: ``reps`` repetitions of each variant; ``quick`` shrinks sizes; ``tiny``
    shrinks them further, for the test suite (its figures mean nothing)."""

    quick: bool = False
    reps: int = 5
    tiny: bool = False

    def pick(self, full: Any, quick: Any, tiny: Any = None) -> Any:
        """``full`` normally, ``quick`` under ``--quick``, ``tiny`` (default: ``quick``) under
        ``--tiny``."""
        if self.tiny:
            return quick if tiny is None else tiny
        return quick if self.quick else full


@dataclass
class Variant:
    """One thing to measure. ``run()`` does one repetition and returns ``{metric: value}`` (a value of
    None: did not finish). With ``warm``, ``warm_up()`` (default: ``run``) runs once, unmeasured."""

    name: str
    run: Callable[[], Dict[str, Optional[float]]]
    warm: bool = True
    warm_up: Optional[Callable[[], Any]] = None


def alternate(variants: Sequence[Variant], reps: int) -> Dict[str, Dict[str, List[Optional[float]]]]:
    """Warm up, then run the variants in turn ``reps`` times (v1, v2, v1, v2 ...).

    Returns ``{variant: {metric: [value per repetition]}}``. A collection runs before each repetition,
    so that garbage left by one variant is not collected inside the next one's timing.
    """
    for variant in variants:
        if variant.warm:
            (variant.warm_up or variant.run)()
    samples: Dict[str, Dict[str, List[Optional[float]]]] = {v.name: {} for v in variants}
    for _ in range(reps):
        for variant in variants:
            gc.collect()
            for metric, value in variant.run().items():
                samples[variant.name].setdefault(metric, []).append(value)
    return samples


@dataclass(frozen=True)
class Target:
    """A goal for a row's median: ``op`` is ``"<="``, ``"<"`` or ``">="``; ``text`` is how it reads."""

    op: str
    bound: float
    text: str

    def met(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return {"<=": value <= self.bound, "<": value < self.bound, ">=": value >= self.bound}[self.op]


@dataclass(frozen=True)
class Ratio:
    """``numerator / denominator`` of two medians, named by ``label`` (e.g. ``base/ours``).
    ``lower_bound``: the numerator did not finish, so the true ratio is larger."""

    label: str
    value: float
    lower_bound: bool = False


@dataclass
class Row:
    """One line of the table: a variant's samples (in ``unit``), and what to compare them with."""

    variant: str
    unit: str
    samples: List[Optional[float]]
    limit: Optional[float] = None      # seconds; a None sample did not finish within it
    per: int = 1                       # each sample is a whole run divided by this many tasks
    ratio: Optional[Ratio] = None
    reference: str = ""                # informational, e.g. a figure measured elsewhere
    note: str = ""

    @property
    def finished(self) -> List[float]:
        return [value for value in self.samples if value is not None]

    @property
    def median(self) -> float:
        """The median, counting a run that did not finish as infinitely long."""
        if not self.samples:
            return math.nan
        return statistics.median(math.inf if v is None else v for v in self.samples)

    @property
    def did_not_finish(self) -> int:
        return sum(value is None for value in self.samples)

    def to_json(self) -> Dict[str, Any]:
        finished = self.finished
        median = self.median
        return {
            "variant": self.variant, "unit": self.unit, "samples": self.samples,
            "median": median if math.isfinite(median) else None,
            "min": min(finished) if finished else None, "max": max(finished) if finished else None,
            "did_not_finish": self.did_not_finish, "limit_s": self.limit, "per": self.per,
            "ratio": None if self.ratio is None else vars(self.ratio).copy(),
            "reference": self.reference, "note": self.note,
        }


# The summary table's engine columns, in order: our engine, the textbook event-driven scheduler (or
# the plain executor a line names as its floor), dask's threaded scheduler, the sleep-retry baseline.
COLUMNS = ("ours", "yardstick", "dask", "baseline")


@dataclass
class Line:
    """One line of the summary table: one measure (``what``, in ``unit``), one ``Row`` per column that
    ran it, the ratio that matters (``ratio``) and the target, checked against the ratio when
    ``on_ratio`` is set, else against the ``ours`` cell's median."""

    what: str
    unit: str
    cells: Dict[str, Row]
    ratio: Optional[Ratio] = None
    target: Optional[Target] = None
    on_ratio: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.cells) - set(COLUMNS)
        if unknown:
            raise ValueError(f"line {self.what!r}: unknown columns {sorted(unknown)}; use {COLUMNS}")

    def subject(self) -> float:
        """The figure the target is checked against (NaN when it is missing)."""
        if self.on_ratio:
            return math.nan if self.ratio is None or self.ratio.lower_bound else self.ratio.value
        ours = self.cells.get("ours")
        return math.nan if ours is None else ours.median

    def met(self) -> Optional[bool]:
        """Whether the target is met; None when there is no target."""
        return None if self.target is None else self.target.met(self.subject())

    def to_json(self) -> Dict[str, Any]:
        return {"what": self.what, "unit": self.unit,
                "cells": {name: row.variant for name, row in self.cells.items()},
                "medians": {name: _finite(row.median) for name, row in self.cells.items()},
                "ratio": None if self.ratio is None else vars(self.ratio).copy(),
                "target": None if self.target is None else {**vars(self.target), "on_ratio": self.on_ratio,
                                                            "met": self.met()},
                "note": self.note}


def _finite(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


def line(what: str, unit: str, ratio: Optional[str] = None, target: Optional[Target] = None,
         note: str = "", on_ratio: Optional[bool] = None, **cells: Optional[Row]) -> Line:
    """A ``Line`` from keyword cells (None cells are left out). ``ratio`` names two columns,
    ``"ours/yardstick"``: their medians' ratio becomes the line's ratio, and the target, if any, is
    checked against it (unless ``on_ratio=False``); without ``ratio`` the target is checked against
    ours."""
    present = {name: row for name, row in cells.items() if row is not None}
    on_ratio = ratio is not None if on_ratio is None else on_ratio
    made = Line(what, unit, present, target=target, on_ratio=on_ratio, note=note)
    if ratio is not None:
        top, bottom = ratio.split("/")
        if top in present and bottom in present:
            made.ratio = ratio_of(f"{top[:4]}/{bottom[:4]}", present[top], present[bottom])
    return made


@dataclass
class Workload:
    """A workload's outcome: its rows, its parameters, and how long it took (or the error it hit)."""

    name: str
    title: str
    params: Dict[str, Any] = field(default_factory=dict)
    rows: List[Row] = field(default_factory=list)
    lines: List[Line] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)   # what did not run, and why (one line each)
    seconds: float = 0.0
    load: Optional[float] = None       # 1-minute load average when it started (other users' work)
    error: Optional[str] = None


def load_average() -> Optional[float]:
    """The 1-minute load average, where the platform has one."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def scaled(values: Sequence[Optional[float]], unit: str) -> List[Optional[float]]:
    """Seconds to ``unit`` (None stays None)."""
    factor = SCALE[unit]
    return [None if value is None else value * factor for value in values]


def per_task(seconds: Sequence[Optional[float]], count: int) -> List[Optional[float]]:
    """Whole-run seconds to microseconds per task."""
    return [None if value is None else value / count * 1e6 for value in seconds]


def paired(numerators: Sequence[Optional[float]], denominators: Sequence[Optional[float]]
           ) -> List[Optional[float]]:
    """Per-repetition ratios of two alternated variants (None where either did not finish)."""
    return [None if a is None or b is None or b == 0 else a / b for a, b in zip(numerators, denominators)]


def ratio_of(label: str, numerator: Row, denominator: Row) -> Optional[Ratio]:
    """The ratio of two rows' medians; a lower bound when the numerator did not finish."""
    top, bottom = numerator.median, denominator.median
    if not math.isfinite(bottom) or bottom <= 0:
        return None
    if math.isfinite(top):
        return Ratio(label, top / bottom)
    if numerator.limit is None:
        return None
    bound = numerator.limit / numerator.per * SCALE[numerator.unit]
    return Ratio(label, bound / bottom, lower_bound=True)


# -- running one repetition -----------------------------------------------------------------------


def _check(result: RunResult, expected: int, who: str) -> None:
    if not result.ok or len(result.observations) != expected:
        failure = next(iter(result.failures.values()), None)
        raise BenchmarkError(f"{who}: {len(result.observations)} of {expected} tasks finished"
                             + (f"; first failure: {failure}" if failure else ""))


class Measured(NamedTuple):
    """One timed run: wall-clock ``seconds``, the ``perf_counter()`` when it returned, its result."""

    seconds: float
    ended: float
    result: RunResult


def run_ours(engine: Engine, tasks: Any, *, expect_ok: bool = True, expected: Optional[int] = None,
             **options: Any) -> Measured:
    """Time ``engine.run(tasks, **options)`` (tasks: any input form). Raises ``BenchmarkError`` when
    ``expect_ok`` and fewer than ``expected`` (default ``len(tasks)``) tasks finished."""
    start = time.perf_counter()
    result = engine.run(tasks, **options)
    ended = time.perf_counter()
    if expect_ok:
        _check(result, len(tasks) if expected is None else expected, "Engine.run")
    return Measured(ended - start, ended, result)


def run_one_shot(tasks: Any, tools: Any, *, expected: Optional[int] = None, **options: Any) -> float:
    """Wall-clock seconds of ``run_tasks`` (a fresh engine: pool start-up included)."""
    start = time.perf_counter()
    result = run_tasks(tasks, tools, **options)
    elapsed = time.perf_counter() - start
    _check(result, len(tasks) if expected is None else expected, "run_tasks")
    return elapsed


def run_baseline(tasks: Sequence[Any], tools: Any, *, max_workers: Optional[int] = None,
                 limit: Optional[float] = None) -> Optional[float]:
    """Wall-clock seconds of the sleep-retry baseline, or None if it did not finish within ``limit``.
    Raises ``BenchmarkError`` if it returned without every observation."""
    start = time.perf_counter()
    try:
        observations = run_sleep_retry(tasks, tools, max_workers=max_workers, timeout=limit)
    except TimeoutError:
        return None
    elapsed = time.perf_counter() - start
    if len(observations) != len(tasks):
        raise BenchmarkError(f"baseline: {len(observations)} of {len(tasks)} tasks have observations")
    return elapsed


def timed(func: Callable[[], Any]) -> float:
    """Wall-clock seconds of ``func()``."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start
