"""What a run produces: its events, the failures of tasks that did not finish, and the result.

Plain records, no behaviour: the scheduler fills them in, traces and callers read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

from .plan import Task

__all__ = ["Event", "TaskFailure", "RunResult", "RunInterrupted"]


class Event(NamedTuple):
    """Something that happened to a task. ``kind`` is one of ``queued``, ``submitted`` (handed to a
    process pool or another executor, not yet running there), ``started`` (the call really began),
    ``finished``, ``failed``, ``skipped``, ``retrying``, ``cancelled``. ``time`` is
    ``time.perf_counter()`` of this process (a worker process's start and end are stamped there, on
    the same system-wide clock); ``worker`` names the thread or process that ran the task (None when it
    ran nowhere). ``cached`` is True for a ``finished`` event answered from a ``CallCache``."""

    kind: str
    task: int
    tool: str
    time: float
    worker: Optional[str] = None
    cached: bool = False


@dataclass
class TaskFailure:
    """Why a task has no observation.

    ``kind`` is ``"failed"`` (the tool raised), ``"timeout"``, ``"worker-died"``, ``"skipped"`` (a
    dependency failed: ``cause`` is that task), ``"cancelled"``, or ``"invalid"`` (the task could not
    start: an unknown reference, a cycle, arguments that cannot be sent to a process). The exception
    object is kept in ``exception`` (this process only); its type, message and traceback as text.
    ``step`` names the engine's own step that failed when the tool itself did not (e.g. ``"resolving
    arguments"``, ``"recording the outcome"``); it is empty when the tool raised.
    """

    task: int
    tool: str
    kind: str
    error_type: str = ""
    message: str = ""
    traceback: str = ""
    args: tuple = ()
    kwargs: Dict[str, Any] = field(default_factory=dict)
    cause: Optional[int] = None
    attempts: int = 0
    exception: Optional[BaseException] = field(default=None, repr=False, compare=False)
    step: str = ""

    def __str__(self) -> str:
        if self.kind == "skipped":
            return f"task {self.task} ({self.tool}) skipped: it depends on task {self.cause}, which did not finish"
        if self.kind == "cancelled":
            return f"task {self.task} ({self.tool}) cancelled"
        where = f" while {self.step}" if self.step else ""
        return f"task {self.task} ({self.tool}) {self.kind}{where}: {self.error_type}: {self.message}"


class RunResult:
    """What a run produced: ``observations`` (idx -> value) for finished tasks, ``failures`` (idx ->
    TaskFailure) for the rest, every ``Event``, the ``tasks`` themselves, and whether it was cancelled.

    ``events`` may be given as a list or as a callable returning one: the run passes its compact log,
    and the ``Event`` records are built the first time ``events`` is read."""

    def __init__(self, observations: Dict[int, Any], failures: Dict[int, TaskFailure],
                 events: Union[List[Event], Callable[[], List[Event]]], tasks: Dict[int, Task],
                 cancelled: bool = False, started: float = 0.0, finished: float = 0.0) -> None:
        self.observations = observations
        self.failures = failures
        self._events = events
        self.tasks = tasks
        self.cancelled = cancelled
        self.started = started
        self.finished = finished

    @property
    def events(self) -> List[Event]:
        """Every event of the run, in the order the engine learned of them."""
        if callable(self._events):
            self._events = self._events()
        return self._events

    def __repr__(self) -> str:
        return (f"RunResult({len(self.observations)} observations, {len(self.failures)} failures, "
                f"cancelled={self.cancelled}, elapsed={self.elapsed:.6f} s)")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunResult):
            return NotImplemented
        return (self.observations, self.failures, self.events, self.tasks, self.cancelled) == \
            (other.observations, other.failures, other.events, other.tasks, other.cancelled)

    __hash__ = None  # type: ignore[assignment]

    @property
    def ok(self) -> bool:
        """True when every task finished."""
        return not self.failures and not self.cancelled

    @property
    def elapsed(self) -> float:
        """Seconds from the run's start to its end."""
        return self.finished - self.started


class RunInterrupted(KeyboardInterrupt):
    """``KeyboardInterrupt`` during ``Engine.run`` or ``LLMCompiler.run``: everything was shut down;
    ``result`` holds what had been observed so far (a ``RunResult``, or the compiler's partial
    ``CompilerResult``)."""

    def __init__(self, result: Any):
        super().__init__("run interrupted")
        self.result = result
