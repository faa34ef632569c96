"""The steps the compiler loop waits on, and the two ways of performing them: blocking and asyncio.

``LLMCompiler``'s loop is a generator that yields a step whenever it must wait: ``Stream`` (read a
model's answer into a reader until the reader says stop) or ``Wait`` (wait for a run to be over).
``drive`` performs the steps by blocking, ``adrive`` with a coroutine; either throws an exception
from a step back into the loop at the step that waited, so the loop's own ``try`` blocks clean up the
same way for both. The readers (``PlanReader`` for the planner, ``TextReader`` for the joiner) and the
per-model ``UsageMeter`` are here too; ``Question`` is one question's state across its rounds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generator, List, NamedTuple, Optional, Protocol, Union

from .cache import CallCache
from .errors import PlanError, RunTimeoutError, ToolCallError, UnknownReferenceError
from .llm import LLM, Usage, astream_of, model_name
from .plan import PlanParser, Task
from .rounds import CompilerResult, Round
from .scheduler import Run
from .tools import ToolRegistry

__all__ = ["Deadline", "Question", "Reader", "Stream", "Wait", "Step", "PlanReader", "TextReader", "UsageMeter", "drive", "adrive",
           "stream_into", "astream_into"]

# After the plan ended, at most this many more chunks are read (for the usage report a server sends
# last); a model that rambles on past <END_OF_PLAN> is cut off there.
_DRAIN_CHUNKS = 64
_LINE_PIECES = re.compile(r"[^\n]*\n|[^\n]+")


# -- token usage -------------------------------------------------------------------------------------


class UsageMeter:
    """Adds up one model's usage report after each call (see the module docstring)."""

    def __init__(self, llm: LLM):
        self._llm = llm
        self.total: Optional[Usage] = None
        self._last: Any = None
        self._cumulative: Optional[tuple] = None

    def before_call(self) -> None:
        self._last = getattr(self._llm, "last_usage", None)
        self._cumulative = _counts(getattr(self._llm, "usage", None))

    def after_call(self) -> None:
        if hasattr(self._llm, "last_usage"):
            last = getattr(self._llm, "last_usage", None)
            # A new report is a new object; the same one means this call reported nothing.
            if isinstance(last, Usage) and last is not self._last:
                self._add(last)
            return
        now, before = _counts(getattr(self._llm, "usage", None)), self._cumulative
        if now is not None and before is not None and now != before:
            self._add(Usage(*(after - earlier for after, earlier in zip(now, before))))

    def _add(self, usage: Usage) -> None:
        if self.total is None:
            self.total = Usage()
        self.total.add(usage)


def _counts(usage: Any) -> Optional[tuple]:
    if not isinstance(usage, Usage):
        return None
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


# -- one question's state, and the steps the loop waits on ---------------------------------------------


class Deadline(NamedTuple):
    """When a question must be answered by: ``at`` (a ``time.perf_counter()`` value), ``timeout``
    seconds after it started."""

    at: float
    timeout: float

    def left(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self.at - time.perf_counter())

    def check(self) -> None:
        """Raise ``expired()`` once the deadline has passed."""
        if time.perf_counter() >= self.at:
            raise self.expired()

    def expired(self) -> RunTimeoutError:
        """The error for a question not answered in time."""
        return RunTimeoutError(f"the question was not answered within {self.timeout:g} s")


@dataclass
class Question:
    """What one question has so far: its rounds, one usage meter per model, its call cache, and the
    deadline it must be answered by (None: no limit)."""

    text: str
    started: float
    deadline: Optional[Deadline] = None
    rounds: List[Round] = field(default_factory=list)
    meters: Dict[int, UsageMeter] = field(default_factory=dict)  # id(llm) -> meter
    names: Dict[int, str] = field(default_factory=dict)  # id(llm) -> model name
    cache: CallCache = field(default_factory=CallCache)

    def meter(self, llm: LLM) -> UsageMeter:
        if id(llm) not in self.meters:
            self.meters[id(llm)], self.names[id(llm)] = UsageMeter(llm), model_name(llm)
        return self.meters[id(llm)]


class Reader(Protocol):
    """Where a ``Stream`` step puts the chunks: ``feed`` each (True: stop reading), ``end`` when the
    stream ended by itself, ``finished`` once reading stopped either way; ``drain`` says whether the
    rest of a stopped stream is read (for a usage report at its end)."""

    drain: bool

    def feed(self, chunk: str) -> bool: ...

    def end(self) -> None: ...

    def finished(self) -> None: ...


class Stream(NamedTuple):
    """Step: stream ``llm``'s answer to ``messages`` into ``reader`` until it says stop."""

    llm: LLM
    messages: List[dict]
    reader: Reader
    meter: UsageMeter
    deadline: Optional[Deadline] = None  # checked after each chunk


class Wait(NamedTuple):
    """Step: wait for ``run`` to be over (at most until ``deadline``); its ``RunResult`` is sent back."""

    run: Run
    deadline: Optional[Deadline] = None


Step = Union["Stream", "Wait"]


class TextReader:
    """Collects a whole answer (the joiner's)."""

    drain = False

    def __init__(self) -> None:
        self.chunks: List[str] = []

    def feed(self, chunk: str) -> bool:
        self.chunks.append(chunk)
        return False

    def end(self) -> None:
        pass

    def finished(self) -> None:
        pass


class PlanReader:
    """Feeds the planner's chunks to a ``PlanParser`` one line at a time, adding each task to the run
    the moment its line is complete; a PlanError or ToolCallError stops the reading and is recorded on
    the round. ``finished()`` closes the run."""

    def __init__(self, tools: ToolRegistry, lenient: bool, run: Run, round_: Round, earlier: set,
                 failed: set, on_task: Optional[Callable[[Task], None]]):
        self._tools, self._run, self._round = tools, run, round_
        self._failed, self._on_task = failed, on_task
        self._parser = PlanParser(lenient=lenient, known=earlier)
        self.chunks: List[str] = []

    @property
    def drain(self) -> bool:
        """Whether the rest of the stream is worth reading (for a usage report at its end)."""
        return self._round.plan_error is None

    def feed(self, chunk: str) -> bool:
        """Take one chunk; True when the plan is over (complete, or cut short by an error)."""
        self.chunks.append(chunk)
        try:
            # One line per feed: a failing line then leaves no completed task behind in the parser,
            # and each task is added the moment its own line ends.
            for piece in _LINE_PIECES.findall(chunk):
                for task in self._parser.feed(piece):
                    self._add(task)
        except (PlanError, ToolCallError) as error:
            self._round.plan_error = error
            return True
        return self._parser.done

    def end(self) -> None:
        """The stream ended without the plan's end marker: what is left is the last line."""
        try:
            for task in self._parser.close():
                self._add(task)
        except (PlanError, ToolCallError) as error:
            self._round.plan_error = error

    def finished(self) -> None:
        self._round.planning_finished = time.perf_counter()
        self._round.plan = "".join(self.chunks)
        self._run.close()

    def _add(self, task: Task) -> None:
        dead = sorted(task.dependencies & self._failed)
        if dead:
            raise UnknownReferenceError(f"task {task.idx} refers to ${dead[0]}, which failed in an earlier "
                                        f"plan and has no output", task=task.idx, reference=dead[0])
        self._tools.check(task)  # (run.add checks too) before on_task: it sees only tasks that run
        self._round.parsed_at[task.idx] = time.perf_counter()
        if self._on_task is not None:
            self._on_task(task)  # before add: a task's plan line is shown before its first event
        self._run.add(task)
        self._round.tasks.append(task)


# -- performing steps ------------------------------------------------------------------------------


def stream_into(step: Stream) -> None:
    """Perform a ``Stream`` step by blocking on the model's ``stream``."""
    step.meter.before_call()
    stream = iter(step.llm.stream(step.messages))
    try:
        for chunk in stream:
            if step.reader.feed(chunk):
                break
            if step.deadline is not None:
                step.deadline.check()
        else:
            step.reader.end()
        step.reader.finished()
        if step.reader.drain:
            for _ in zip(range(_DRAIN_CHUNKS), stream):
                pass  # the rest of the answer is ignored; a usage report may come at its end
    finally:
        getattr(stream, "close", lambda: None)()
        step.meter.after_call()


async def astream_into(step: Stream) -> None:
    """Perform a ``Stream`` step on the event loop, with ``astream_of``."""
    step.meter.before_call()
    stream = astream_of(step.llm, step.messages)
    try:
        ended = True
        async for chunk in stream:
            if step.reader.feed(chunk):
                ended = False
                break
            if step.deadline is not None:
                step.deadline.check()
        if ended:
            step.reader.end()
        step.reader.finished()
        if step.reader.drain and not ended:
            drained = 0
            async for _ in stream:
                drained += 1
                if drained >= _DRAIN_CHUNKS:
                    break
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
        step.meter.after_call()


def drive(steps: Generator[Step, Any, CompilerResult], perform: Callable[[Step], Any]) -> CompilerResult:
    """Run the loop ``steps`` to its end, performing each step it yields with ``perform``; an
    exception from a step is thrown back into the loop where it waited."""
    value: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        try:
            value = perform(step)
        except BaseException as raised:  # every exception, KeyboardInterrupt too, goes to the loop
            error = raised


async def adrive(steps: Generator[Step, Any, CompilerResult], perform: Callable[[Step], Any]
                  ) -> CompilerResult:
    """``drive`` with ``perform`` a coroutine function (``CancelledError`` goes to the loop too)."""
    value: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        try:
            value = await perform(step)
        except BaseException as raised:
            error = raised
