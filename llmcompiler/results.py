"""What a run produces: its events, the failures of tasks that did not finish, and the result.

Plain records, no behaviour: the scheduler fills them in, traces and callers read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional

from .plan import Task

__all__ = ["Event", "TaskFailure", "RunResult", "RunInterrupted"]


class Event(NamedTuple):
    """Something that happened to a task. ``kind`` is one of ``queued``, ``started``, ``finished``,
    ``failed``, ``skipped``, ``retrying``, ``cancelled``. ``time`` is ``time.perf_counter()``;
    ``worker`` names the thread or process that ran the task (None when it ran nowhere)."""

    kind: str
    task: int
    tool: str
    time: float
    worker: Optional[str] = None


@dataclass
class TaskFailure:
    """Why a task has no observation.

    ``kind`` is ``"failed"`` (the tool raised), ``"timeout"``, ``"worker-died"``, ``"skipped"`` (a
    dependency failed: ``cause`` is that task), ``"cancelled"``, or ``"invalid"`` (the task could not
    start: an unknown reference, a cycle, arguments that cannot be sent to a process). The exception
    object is kept in ``exception`` (this process only); its type, message and traceback as text.
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

    def __str__(self) -> str:
        if self.kind == "skipped":
            return f"task {self.task} ({self.tool}) skipped: it depends on task {self.cause}, which did not finish"
        if self.kind == "cancelled":
            return f"task {self.task} ({self.tool}) cancelled"
        return f"task {self.task} ({self.tool}) {self.kind}: {self.error_type}: {self.message}"


@dataclass
class RunResult:
    """What a run produced: ``observations`` (idx -> value) for finished tasks, ``failures`` (idx ->
    TaskFailure) for the rest, every ``Event``, the ``tasks`` themselves, and whether it was cancelled."""

    observations: Dict[int, Any]
    failures: Dict[int, TaskFailure]
    events: List[Event]
    tasks: Dict[int, Task]
    cancelled: bool = False
    started: float = 0.0
    finished: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every task finished."""
        return not self.failures and not self.cancelled

    @property
    def elapsed(self) -> float:
        """Seconds from the run's start to its end."""
        return self.finished - self.started


class RunInterrupted(KeyboardInterrupt):
    """``KeyboardInterrupt`` during ``Engine.run``: everything was shut down; ``result`` holds what had
    been observed so far."""

    def __init__(self, result: RunResult):
        super().__init__("run interrupted")
        self.result = result
