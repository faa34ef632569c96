"""The LLMCompiler loop: planner -> scheduler -> joiner -> replan.

This module owns the loop (``LLMCompiler``), what it returns (``CompilerResult``, ``Timings``) and
the token-usage meter. What the models are told and how the joiner's answer is read are in
``prompts``; the record kept per round (``Round``, ``JoinerDecision``) is in ``rounds``.

Design
------
``LLMCompiler.run(question)`` answers a question in *rounds*. In each round:

1. **Plan.** The planner LLM gets the tool list, the plan format with worked examples, the question
   and, on a replan, every earlier plan with what its tasks returned. Its answer streams through a
   ``PlanParser`` straight into a streaming ``Run``: each task is added the moment its line is
   complete, so it starts while the planner is still writing the lines after it.
2. **Execute.** When the plan ends the run is closed and waited for (tasks may still be running).
3. **Join.** The joiner LLM reads the question, the plans and every observation and answers
   ``Thought: ...`` then ``Action: Finish(<answer>)`` (the loop ends) or ``Action: Replan(<reason>)``.

Task indices continue across rounds: a new plan starts at one past the highest index so far, and may
refer with ``$N`` to any earlier task that finished (its observation is passed to the run as
``known``). Referring to an earlier task that failed is a plan error.

A broken plan (``PlanError`` from the parser, ``ToolCallError`` when a task does not fit its tool)
stops reading the planner's stream. The tasks already added keep running and are kept; the error is
recorded on the round and, while replans remain, is itself the reason for the next plan (the joiner
is not asked). In the last round the joiner is asked anyway, to answer from what is known.

Replanning is bounded by ``max_replans`` (default 2, so at most 3 plans). In the last round the joiner
is told it cannot replan; if it still answers ``Replan``, the loop stops with
``result.replans_exhausted = True`` and ``result.answer = None`` (a ``Finish`` always ends the loop,
so there is never an earlier answer to fall back on).

Timings (seconds, summed over rounds; ``CompilerResult.timings``)
-----------------------------------------------------------------
* ``planning``: from sending the planner request until the plan was complete (``join()``,
  ``<END_OF_PLAN>``, the end of the stream, or the error that stopped it).
* ``execution``: from the first task's start to the last task's end in the round (its makespan).
  Execution starts while planning streams, so the two overlap; ``overlap`` is the part of
  ``execution`` that happened while the plan was still being written.
* ``joining``: the joiner calls, request to last chunk.
* ``total``: the wall-clock time of ``run()``; less than the sum of the phases by about ``overlap``.

Usage: after each LLM call the model's ``last_usage`` (as ``OpenAIChat`` keeps it) is added up; a model
with only a cumulative ``usage`` is measured by difference. ``None`` when the model reports neither.
Share one model between concurrent ``run()`` calls only if you do not need exact usage.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

from .errors import (LLMCompilerError, PlanError, RunClosedError, RunTimeoutError, ToolCallError,
                     UnknownReferenceError)
from .llm import LLM, Usage
from .plan import PlanParser, Task
from .engine import Engine
from .prompts import joiner_messages, parse_joiner_output, planner_messages
from .results import Event, RunResult, TaskFailure
from .rounds import JoinerDecision, Round
from .scheduler import Run
from .tools import ToolRegistry, as_registry

__all__ = ["LLMCompiler", "CompilerResult", "Timings"]

# After the plan ended, at most this many more chunks are read (for the usage report a server sends
# last); a model that rambles on past <END_OF_PLAN> is cut off there.
_DRAIN_CHUNKS = 64


# -- results -----------------------------------------------------------------------------------------


@dataclass
class Timings:
    """Seconds spent per phase, summed over rounds (see the module docstring for the definitions)."""

    planning: float = 0.0
    execution: float = 0.0
    joining: float = 0.0
    overlap: float = 0.0
    total: float = 0.0


@dataclass
class CompilerResult:
    """What ``LLMCompiler.run`` produced.

    ``answer`` is the joiner's final answer (the text inside ``Finish(...)``), None when the loop ended
    without one (``replans_exhausted``). ``observations``, ``failures`` and ``tasks`` are keyed by task
    index across all plans; ``events`` are every scheduler event, in order; ``rounds`` the per-plan
    details. ``usage`` is None when the model reports no token usage.
    """

    question: str
    answer: Optional[str]
    thought: Optional[str]
    rounds: List[Round]
    observations: Dict[int, Any]
    failures: Dict[int, TaskFailure]
    tasks: Dict[int, Task]
    events: List[Event]
    replans_exhausted: bool
    timings: Timings
    usage: Optional[Usage]

    @property
    def plans(self) -> List[str]:
        """The text of every plan, in order."""
        return [round_.plan for round_ in self.rounds]

    @property
    def replans(self) -> int:
        """How many times a new plan was made (plans - 1)."""
        return len(self.rounds) - 1

    @property
    def plan_errors(self) -> List[LLMCompilerError]:
        """The errors that cut plans short, in order."""
        return [round_.plan_error for round_ in self.rounds if round_.plan_error is not None]

    @property
    def finished(self) -> bool:
        """True when the joiner gave a final answer."""
        return self.answer is not None

    def phases(self) -> List[tuple]:
        """``(label, start, end)`` of every planner and joiner call, for ``trace.timeline``."""
        found = []
        for round_ in self.rounds:
            found.append((f"planner {round_.number}", round_.planning_started, round_.planning_finished))
            if round_.joining_started is not None and round_.joining_finished is not None:
                found.append((f"joiner {round_.number}", round_.joining_started, round_.joining_finished))
        return found


# -- token usage -------------------------------------------------------------------------------------


class _UsageMeter:
    """Adds up the model's usage report after each call (see the module docstring)."""

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


def _close(stream: Iterator[str]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


_LINE_PIECES = re.compile(r"[^\n]*\n|[^\n]+")


# -- the loop ----------------------------------------------------------------------------------------


class LLMCompiler:
    """Answers questions with an LLM planner, parallel tool calls and an LLM joiner.

    ``llm`` is anything with ``stream(messages)`` (``OpenAIChat``, ``ScriptedLLM``). ``tools`` is a
    ``ToolRegistry`` or what ``as_registry`` takes; it may be None when ``engine`` is given (the
    engine's tools are used; ``tools``, if given, must be that same registry). Without ``engine`` the
    compiler owns a new ``Engine(tools, max_workers=..., process_workers=...)`` and closes it in
    ``close()``. ``lenient`` reads sloppy model output: plan lines that are not tasks become thoughts,
    non-literal arguments become one string, and a joiner answer without an action is the answer.
    ``execution_timeout`` bounds the wait for a plan's tasks once the plan is complete (tasks still
    running are cancelled and reported as such). ``observation_limit`` cuts each observation shown to
    the models to that many characters.

    A context manager; ``close()`` is idempotent. ``run`` may be called from several threads at once.
    Raises TypeError or ValueError for bad arguments.
    """

    def __init__(self, llm: LLM, tools: Any = None, *, max_replans: int = 2, engine: Optional[Engine] = None,
                 max_workers: Optional[int] = None, process_workers: Optional[int] = None,
                 lenient: bool = False, execution_timeout: Optional[float] = None,
                 observation_limit: int = 2000):
        if not callable(getattr(llm, "stream", None)):
            raise TypeError(f"llm must have a stream(messages) method, got {type(llm).__name__}")
        if isinstance(max_replans, bool) or not isinstance(max_replans, int) or max_replans < 0:
            raise ValueError(f"max_replans must be an int >= 0, got {max_replans!r}")
        if execution_timeout is not None and not execution_timeout > 0:
            raise ValueError(f"execution_timeout must be positive or None, got {execution_timeout!r}")
        if not isinstance(observation_limit, int) or observation_limit < 1:
            raise ValueError(f"observation_limit must be a positive int, got {observation_limit!r}")
        if engine is None:
            if tools is None:
                raise TypeError("LLMCompiler needs tools (a ToolRegistry, a dict or a list) or an engine")
            engine = Engine(tools, max_workers=max_workers, process_workers=process_workers)
            self._owns_engine = True
        else:
            if max_workers is not None or process_workers is not None:
                raise ValueError("max_workers and process_workers size a new engine; configure the "
                                 "engine you pass instead")
            if tools is not None and as_registry(tools) is not engine.tools:
                raise ValueError("tools differ from the engine's tools; pass one or the other")
            self._owns_engine = False
        self.llm = llm
        self.engine = engine
        self.tools: ToolRegistry = engine.tools
        self.max_replans = max_replans
        self.lenient = lenient
        self.execution_timeout = execution_timeout
        self.observation_limit = observation_limit
        self._lock = threading.Lock()  # guards _closed
        self._closed = False

    def __enter__(self) -> "LLMCompiler":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the engine if this compiler made it (cancelling what still runs). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._owns_engine:
            self.engine.close()

    def run(self, question: str, *, on_event: Optional[Callable[[Event], None]] = None,
            on_task: Optional[Callable[[Task], None]] = None,
            on_round: Optional[Callable[[Round], None]] = None) -> CompilerResult:
        """Answer ``question``; returns a ``CompilerResult``.

        Callbacks, for showing progress: ``on_event`` gets every scheduler ``Event`` (from worker
        threads, one at a time), ``on_task`` each task just before it is added to a run, ``on_round``
        each round once decided. An exception from a callback ends ``run`` with that exception (one
        from ``on_event`` once the plan's run is over).

        Raises ``RunClosedError`` after ``close()``, ValueError for an empty question, ``LLMError``
        when a model call fails (``JoinerOutputError`` when the joiner's answer cannot be read and
        ``lenient`` is off); running tasks are cancelled first.
        """
        if self._closed:
            raise RunClosedError("this LLMCompiler is closed")
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty string, got {question!r}")
        started = time.perf_counter()
        meter = _UsageMeter(self.llm)
        rounds: List[Round] = []
        decision: Optional[JoinerDecision] = None
        for number in range(1, self.max_replans + 2):
            last = number == self.max_replans + 1
            decision = None
            round_ = self._plan_and_execute(question, rounds, number, meter, on_event, on_task)
            rounds.append(round_)
            if round_.plan_error is not None and not last:
                round_.replan_reason = f"the plan could not be read past an error: {round_.plan_error}"
            else:
                decision = self._join(question, rounds, last, meter)
                if decision.action == "replan":
                    round_.replan_reason = decision.text
            if on_round is not None:
                on_round(round_)
            if decision is not None and decision.action == "finish":
                break
        return self._result(question, rounds, decision, started, meter)

    # -- one round ------------------------------------------------------------------------------

    def _plan_and_execute(self, question: str, rounds: List[Round], number: int, meter: _UsageMeter,
                          on_event: Optional[Callable[[Event], None]],
                          on_task: Optional[Callable[[Task], None]]) -> Round:
        earlier = {task.idx for round_ in rounds for task in round_.tasks}
        known = {idx: value for round_ in rounds for idx, value in round_.result.observations.items()}
        failed = {idx for round_ in rounds for idx in round_.result.failures}
        round_ = Round(number, max(earlier, default=0) + 1)
        messages = planner_messages(self.tools, question, rounds, round_.first_index, self.observation_limit)
        run = self.engine.start(on_event=on_event, known=known)
        try:
            self._stream_plan(messages, run, round_, earlier, failed, meter, on_task)
            # Once the run is over, wait() re-raises the first exception on_event raised (the run went
            # on without the callback); cancelling a run that is over does nothing.
            round_.result = self._wait(run)
        except BaseException:
            run.cancel()  # a model error or an interrupt: nothing of this run may go on running
            raise
        return round_

    def _stream_plan(self, messages: List[dict], run: Run, round_: Round, earlier: set, failed: set,
                     meter: _UsageMeter, on_task: Optional[Callable[[Task], None]]) -> None:
        """Feed the planner's stream to the parser, one line at a time, adding each task to ``run`` as
        soon as it is complete; then close the run. A PlanError or ToolCallError stops the reading and
        is recorded on the round."""
        parser = PlanParser(lenient=self.lenient, known=earlier)
        chunks: List[str] = []
        meter.before_call()
        round_.planning_started = time.perf_counter()
        stream = iter(self.llm.stream(messages))
        try:
            try:
                for chunk in stream:
                    chunks.append(chunk)
                    # One line per feed: a failing line then leaves no completed task behind in the
                    # parser, and each task is added the moment its own line ends.
                    for piece in _LINE_PIECES.findall(chunk):
                        for task in parser.feed(piece):
                            self._add(run, task, round_, failed, on_task)
                    if parser.done:
                        break
                else:
                    for task in parser.close():
                        self._add(run, task, round_, failed, on_task)
            except (PlanError, ToolCallError) as error:
                round_.plan_error = error
            round_.planning_finished = time.perf_counter()
            round_.plan = "".join(chunks)
            run.close()
            if round_.plan_error is None:
                for _ in zip(range(_DRAIN_CHUNKS), stream):
                    pass  # the rest of the answer is ignored; a usage report may come at its end
        finally:
            _close(stream)
            meter.after_call()

    def _add(self, run: Run, task: Task, round_: Round, failed: set,
             on_task: Optional[Callable[[Task], None]]) -> None:
        dead = sorted(task.dependencies & failed)
        if dead:
            raise UnknownReferenceError(f"task {task.idx} refers to ${dead[0]}, which failed in an earlier "
                                        f"plan and has no output", task=task.idx, reference=dead[0])
        self.tools.check(task)  # (run.add checks too) before on_task, so it only sees tasks that run
        round_.parsed_at[task.idx] = time.perf_counter()
        if on_task is not None:
            on_task(task)  # before add: a task's plan line is shown before its first event
        run.add(task)
        round_.tasks.append(task)

    def _wait(self, run: Run) -> RunResult:
        try:
            return run.wait(self.execution_timeout)
        except RunTimeoutError:
            run.cancel()
            return run.wait(self.execution_timeout)

    def _join(self, question: str, rounds: List[Round], last: bool, meter: _UsageMeter) -> JoinerDecision:
        round_ = rounds[-1]
        messages = joiner_messages(question, rounds, last, self.observation_limit)
        meter.before_call()
        round_.joining_started = time.perf_counter()
        stream = iter(self.llm.stream(messages))
        try:
            text = "".join(stream)
        finally:
            _close(stream)
            meter.after_call()
        round_.joining_finished = time.perf_counter()
        round_.joiner = text
        round_.decision = parse_joiner_output(text, lenient=self.lenient)
        return round_.decision

    def _result(self, question: str, rounds: List[Round], decision: Optional[JoinerDecision],
                started: float, meter: _UsageMeter) -> CompilerResult:
        observations: Dict[int, Any] = {}
        failures: Dict[int, TaskFailure] = {}
        tasks: Dict[int, Task] = {}
        events: List[Event] = []
        timings = Timings()
        for round_ in rounds:
            result = round_.result
            observations.update(result.observations)
            failures.update(result.failures)
            tasks.update({task.idx: task for task in round_.tasks})
            events.extend(result.events)
            timings.planning += round_.planning_finished - round_.planning_started
            if round_.joining_started is not None and round_.joining_finished is not None:
                timings.joining += round_.joining_finished - round_.joining_started
            span = round_.execution
            if span is not None:
                timings.execution += span[1] - span[0]
                timings.overlap += max(0.0, min(span[1], round_.planning_finished)
                                       - max(span[0], round_.planning_started))
        timings.total = time.perf_counter() - started
        finished = decision is not None and decision.action == "finish"
        return CompilerResult(
            question, decision.text if finished else None, decision.thought if decision else None,
            rounds, observations, failures, tasks, events, not finished, timings, meter.total)
