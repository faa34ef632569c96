"""The LLMCompiler loop: planner -> scheduler -> joiner -> replan.

This module owns the loop (``LLMCompiler``) and the token-usage meter. What the models are told and
how the joiner's answer is read are in ``prompts``; the records (``Round``, ``JoinerDecision``,
``CompilerResult``, ``Timings``) are in ``rounds``.

Design
------
``LLMCompiler.run(question)`` answers a question in *rounds*. In each round:

1. **Plan.** The planner LLM gets the tool list, the plan format with worked examples, the question
   and, on a replan, every earlier plan with what its tasks returned. Its answer streams through a
   ``PlanParser`` straight into a streaming ``Run``: each task is added the moment its line is
   complete, so it starts while the planner is still writing the lines after it.
2. **Execute.** When the plan ends the run is closed and waited for (tasks may still be running).
3. **Join.** The joiner LLM (``joiner_llm``, by default the planner's) reads the question, the plans
   and every observation and answers ``Thought: ...`` then ``Action: Finish(<answer>)`` (the loop
   ends) or ``Action: Replan(<reason>)``.

One loop, two drivers. The loop (``_answer``) is a generator that yields the steps needing a wait:
"stream this model's answer into this reader" (``_Stream``) and "wait for this run" (``_Wait``).
``run`` performs them by blocking (``stream``, ``Run.wait``); ``arun`` performs them on the caller's
event loop (``llm.astream_of``, and ``Run.wait`` on an executor thread), so an asyncio program is never
blocked, and cancelling the awaiting task cancels the run: the exception is thrown into the loop at
the step it was waiting on, and the round's run is cancelled there, as for any error.

Task indices continue across rounds: a new plan starts at one past the highest index so far, and may
refer with ``$N`` to any earlier task that finished (its observation is passed to the run as
``known``). Referring to an earlier task that failed is a plan error. Every run of one question shares
one ``CallCache``, so a cacheable tool called again with the same arguments answers from it.

A broken plan (``PlanError`` from the parser, ``ToolCallError`` when a task does not fit its tool)
stops reading the planner's stream. The tasks already added keep running and are kept; the error is
recorded on the round and, while replans remain, is itself the reason for the next plan (the joiner
is not asked). In the last round the joiner is asked anyway, to answer from what is known.

Replanning is bounded by ``max_replans`` (default 2, so at most 3 plans). In the last round the joiner
is told it cannot replan; if it still answers ``Replan``, the loop stops with
``result.replans_exhausted = True`` and ``result.answer = None``.

Nothing computed is lost: an ``LLMCompilerError`` raised once the question has started (a model call
failing in the planner, the joiner or a replan; ``JoinerOutputError``; a run timeout) carries the
partial ``CompilerResult`` as its ``result`` attribute (``complete`` False), and ``KeyboardInterrupt``
becomes ``RunInterrupted`` carrying it.

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
with only a cumulative ``usage`` is measured by difference. ``None`` when no model reports either.
Share one model between concurrent ``run()`` calls only if you do not need exact usage.

Logging (``llmcompiler.compiler``): each question and its answer at INFO, each plan's outcome and each
replan at INFO, the plan and joiner texts at DEBUG.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Any, Callable, Dict, Generator, List, Optional

from ._steps import (Deadline, PlanReader, Question, Step, Stream, TextReader, Wait, adrive, astream_into, drive,
                     stream_into)
from .cache import CallCache
from .engine import Engine
from .errors import LLMCompilerError, RunClosedError, RunTimeoutError
from .llm import LLM, Usage
from .plan import Task
from .prompts import joiner_messages, parse_joiner_output, planner_messages
from .results import Event, RunInterrupted, RunResult, TaskFailure
from .rounds import CompilerResult, JoinerDecision, Round, Timings
from .scheduler import Run
from .text import short_text
from .tools import ToolRegistry, as_registry

__all__ = ["LLMCompiler", "CompilerResult", "Timings"]

_log = logging.getLogger("llmcompiler.compiler")

_LOGGED_TEXT = 2000  # characters of a question, plan or answer in a log record

EventCallback = Optional[Callable[[Event], None]]
TaskCallback = Optional[Callable[[Task], None]]
RoundCallback = Optional[Callable[[Round], None]]


# -- the loop ----------------------------------------------------------------------------------------


class LLMCompiler:
    """Answers questions with an LLM planner, parallel tool calls and an LLM joiner.

    ``llm`` is anything with ``stream(messages)`` (``OpenAIChat``, ``ScriptedLLM``); it plans, and also
    joins unless ``joiner_llm`` is given (e.g. a cheaper model). ``tools`` is a ``ToolRegistry`` or
    what ``as_registry`` takes; it may be None when ``engine`` is given (the engine's tools are used;
    ``tools``, if given, must be that same registry). Without ``engine`` the compiler owns a new
    ``Engine(tools, max_workers=..., process_workers=...)`` and closes it in ``close()``. ``lenient``
    reads sloppy model output: plan lines that are not tasks become thoughts, non-literal arguments
    become one string, and a joiner answer without an action is the answer. ``execution_timeout``
    bounds the wait for a plan's tasks once the plan is complete (tasks still running are cancelled
    and reported as such). ``observation_limit`` cuts each observation shown to the models to that
    many characters (the observation itself is kept whole).

    A context manager; ``close()`` is idempotent. ``run`` may be called from several threads at once,
    and ``arun`` from several tasks. Raises TypeError or ValueError for bad arguments.
    """

    def __init__(self, llm: LLM, tools: Any = None, *, joiner_llm: Optional[LLM] = None, max_replans: int = 2,
                 engine: Optional[Engine] = None, max_workers: Optional[int] = None,
                 process_workers: Optional[int] = None, lenient: bool = False,
                 execution_timeout: Optional[float] = None, observation_limit: int = 2000):
        for role, model in (("llm", llm), ("joiner_llm", joiner_llm if joiner_llm is not None else llm)):
            if not callable(getattr(model, "stream", None)):
                raise TypeError(f"{role} must have a stream(messages) method, got {type(model).__name__}")
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
        self.joiner_llm: LLM = joiner_llm if joiner_llm is not None else llm
        self.engine = engine
        self.tools: ToolRegistry = engine.tools
        self.max_replans = max_replans
        self.lenient = lenient
        self.execution_timeout = execution_timeout
        self.observation_limit = observation_limit
        # An engine that takes a CallCache shares one across a question's runs.
        self._engine_takes_cache = "cache" in inspect.signature(engine.start).parameters
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

    def run(self, question: str, *, on_event: EventCallback = None, on_task: TaskCallback = None,
            on_round: RoundCallback = None, timeout: Optional[float] = None) -> CompilerResult:
        """Answer ``question``; returns a ``CompilerResult``.

        Callbacks, for showing progress: ``on_event`` gets every scheduler ``Event`` (from worker
        threads, one at a time), ``on_task`` each task just before it is added to a run, ``on_round``
        each round once decided. An exception from a callback ends ``run`` with that exception (one
        from ``on_event`` once the plan's run is over).

        ``timeout`` (seconds) bounds the whole question: past it, the current run is cancelled and
        ``RunTimeoutError`` raised. It is checked between the model's chunks and while tasks run, so a
        model that stalls mid-answer is bounded by its own timeout (``arun`` has no such limit).

        Raises ``RunClosedError`` after ``close()``, ValueError for an empty question or a bad
        timeout, ``LLMError`` when a model call fails (``JoinerOutputError`` when the joiner's answer
        cannot be read and ``lenient`` is off), ``RunTimeoutError`` past ``timeout``,
        ``RunInterrupted`` on ``KeyboardInterrupt``; running tasks are cancelled first, and the
        error's ``result`` is the partial ``CompilerResult``.
        """
        state = self._begin(question, timeout)
        try:
            return drive(self._answer(state, on_event, on_task, on_round), self._perform)
        except KeyboardInterrupt:
            raise RunInterrupted(self._result(state, None, partial=True)) from None  # type: ignore[arg-type]
        except LLMCompilerError as error:
            error.result = self._result(state, None, partial=True)  # type: ignore[attr-defined]
            raise

    async def arun(self, question: str, *, on_event: EventCallback = None, on_task: TaskCallback = None,
                   on_round: RoundCallback = None, timeout: Optional[float] = None) -> CompilerResult:
        """``run`` for asyncio: answers ``question`` without blocking the caller's event loop.

        The models are read with ``astream`` (``llm.astream_of``: a thread for a model with only
        ``stream``) and runs are waited for on an executor thread. ``on_task`` and ``on_round`` are
        called on the event loop, ``on_event`` on worker threads. Cancelling the awaiting task cancels
        the question: the model's stream is closed, the current run cancelled (nothing new starts,
        process tools are terminated, thread tools abandoned), and ``CancelledError`` is raised once
        that is done. ``timeout`` bounds the whole question, a stalled model too: past it, the
        question is cancelled the same way and ``RunTimeoutError`` raised. Raises what ``run`` raises,
        with ``result`` attached the same way.
        """
        import asyncio

        state = self._begin(question, timeout)
        answering = adrive(self._answer(state, on_event, on_task, on_round), self._aperform)
        try:
            return await (answering if timeout is None else asyncio.wait_for(answering, timeout))
        except LLMCompilerError as error:
            error.result = self._result(state, None, partial=True)  # type: ignore[attr-defined]
            raise
        except asyncio.TimeoutError:
            if state.deadline is None or state.deadline.left() > 0:
                raise  # a model's own TimeoutError, not the question's deadline
            expired = state.deadline.expired()  # wait_for cancelled the question: it is over
            expired.result = self._result(state, None, partial=True)  # type: ignore[attr-defined]
            raise expired from None

    def _begin(self, question: str, timeout: Optional[float]) -> Question:
        if self._closed:
            raise RunClosedError("this LLMCompiler is closed")
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty string, got {question!r}")
        if timeout is not None and not (isinstance(timeout, (int, float)) and 0 < timeout < float("inf")):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        _log.info("question: %s", short_text(question, _LOGGED_TEXT))
        started = time.perf_counter()
        return Question(question, started, None if timeout is None else Deadline(started + timeout, timeout))

    # -- the loop, as steps ---------------------------------------------------------------------

    def _answer(self, state: Question, on_event: EventCallback, on_task: TaskCallback,
                on_round: RoundCallback) -> Generator[Step, Any, CompilerResult]:
        decision: Optional[JoinerDecision] = None
        for number in range(1, self.max_replans + 2):
            last = number == self.max_replans + 1
            decision = None
            round_ = yield from self._plan_and_execute(state, number, on_event, on_task)
            if round_.plan_error is not None and not last:
                round_.replan_reason = f"the plan could not be read past an error: {round_.plan_error}"
            else:
                decision = yield from self._join(state, last)
                if decision.action == "replan":
                    round_.replan_reason = decision.text
            if round_.replan_reason is not None and not last:
                _log.info("replanning after plan %d of at most %d: %s", number, self.max_replans + 1,
                          short_text(round_.replan_reason, _LOGGED_TEXT))
            if on_round is not None:
                on_round(round_)
            if decision is not None and decision.action == "finish":
                break
        result = self._result(state, decision)
        _log.info("%s after %d plan(s) in %.2f s", "answered" if result.finished else "no answer",
                  len(result.rounds), result.timings.total)
        return result

    def _plan_and_execute(self, state: Question, number: int, on_event: EventCallback,
                          on_task: TaskCallback) -> Generator[Step, Any, Round]:
        rounds = state.rounds
        earlier = {task.idx for round_ in rounds for task in round_.tasks}
        known = {idx: value for round_ in rounds if round_.result
                 for idx, value in round_.result.observations.items()}
        failed = {idx for round_ in rounds if round_.result for idx in round_.result.failures}
        if state.deadline is not None:
            state.deadline.check()
        round_ = Round(number, max(earlier, default=0) + 1)
        messages = planner_messages(self.tools, state.text, rounds, round_.first_index, self.observation_limit)
        run = self._start_run(on_event, known, state.cache)
        rounds.append(round_)  # from here on, a partial result shows this round
        try:
            reader = PlanReader(self.tools, self.lenient, run, round_, earlier, failed, on_task)
            round_.planning_started = time.perf_counter()
            yield Stream(self.llm, messages, reader, state.meter(self.llm), state.deadline)
            # Once the run is over, wait() re-raises the first exception on_event raised (the run went
            # on without the callback); cancelling a run that is over does nothing.
            round_.result = yield Wait(run, state.deadline)
        except BaseException as error:
            run.cancel()  # a model error, an interrupt, a cancelled task: nothing of this run goes on
            round_.result = run.result()
            if not isinstance(error, GeneratorExit):
                # The cancelled run is over at once; its last events may still be on their way to
                # on_event: the question ends once they are delivered.
                try:
                    round_.result = yield Wait(run, None)
                except BaseException:
                    pass  # interrupted again while waiting: the first error is the one raised
            raise
        _log.debug("plan %d:\n%s", number, short_text(round_.plan, _LOGGED_TEXT))
        _log.info("plan %d: %d tasks, %d failed or skipped%s", number, len(round_.tasks),
                  len(round_.result.failures), f"; cut short: {round_.plan_error}" if round_.plan_error else "")
        return round_

    def _start_run(self, on_event: EventCallback, known: Dict[int, Any], cache: CallCache) -> Run:
        if self._engine_takes_cache:
            return self.engine.start(on_event=on_event, known=known, cache=cache)  # type: ignore[call-arg]
        return self.engine.start(on_event=on_event, known=known)

    def _join(self, state: Question, last: bool) -> Generator[Step, Any, JoinerDecision]:
        round_ = state.rounds[-1]
        messages = joiner_messages(state.text, state.rounds, last, self.observation_limit)
        reader = TextReader()
        round_.joining_started = time.perf_counter()
        yield Stream(self.joiner_llm, messages, reader, state.meter(self.joiner_llm), state.deadline)
        round_.joining_finished = time.perf_counter()
        round_.joiner = "".join(reader.chunks)
        _log.debug("joiner %d:\n%s", round_.number, short_text(round_.joiner, _LOGGED_TEXT))
        round_.decision = parse_joiner_output(round_.joiner, lenient=self.lenient)
        return round_.decision

    # -- the steps, performed ---------------------------------------------------------------------

    def _perform(self, step: Step) -> Any:
        """Do one step by blocking: stream the answer, or wait for the run."""
        return self._wait(step.run, step.deadline) if isinstance(step, Wait) else stream_into(step)

    async def _aperform(self, step: Step) -> Any:
        """Do one step on the event loop: stream with ``astream_of``, wait on an executor thread."""
        if isinstance(step, Wait):
            return await self._await_run(step.run, step.deadline)
        return await astream_into(step)

    def _wait(self, run: Run, deadline: Optional[Deadline] = None) -> RunResult:
        """The run's result once it is over. Past ``execution_timeout`` its tasks are cancelled (and
        the loop goes on); past the question's ``deadline`` (when sooner) RunTimeoutError is raised."""
        limit = self.execution_timeout
        if deadline is not None and (limit is None or deadline.left() < limit):
            try:
                return run.wait(deadline.left())
            except RunTimeoutError:
                raise deadline.expired() from None
        try:
            return run.wait(limit)
        except RunTimeoutError:
            run.cancel()
            return run.wait(limit)

    async def _await_run(self, run: Run, deadline: Optional[Deadline]) -> RunResult:
        import asyncio

        waiting = asyncio.get_running_loop().run_in_executor(None, self._wait, run, deadline)
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            run.cancel()
            await asyncio.wait([waiting])  # the thread returns as soon as the cancelled run is over
            raise

    # -- the result -------------------------------------------------------------------------------

    def _result(self, state: Question, decision: Optional[JoinerDecision], partial: bool = False
                ) -> CompilerResult:
        observations: Dict[int, Any] = {}
        failures: Dict[int, TaskFailure] = {}
        tasks: Dict[int, Task] = {}
        events: List[Event] = []
        timings = Timings()
        for round_ in state.rounds:
            tasks.update({task.idx: task for task in round_.tasks})
            if round_.planning_finished:
                timings.planning += round_.planning_finished - round_.planning_started
            if round_.joining_started is not None and round_.joining_finished is not None:
                timings.joining += round_.joining_finished - round_.joining_started
            result = round_.result
            if result is None:
                continue
            observations.update(result.observations)
            failures.update(result.failures)
            events.extend(result.events)
            span = round_.execution
            if span is not None:
                timings.execution += span[1] - span[0]
                timings.overlap += max(0.0, min(span[1], round_.planning_finished or span[1])
                                       - max(span[0], round_.planning_started))
        timings.total = time.perf_counter() - state.started
        finished = decision is not None and decision.action == "finish"
        by_model: Dict[str, Usage] = {}
        for key, meter in state.meters.items():
            if meter.total is not None:
                by_model.setdefault(state.names[key], Usage()).add(meter.total)
        usage = None if not by_model else Usage()
        for counted in by_model.values():
            usage.add(counted)  # type: ignore[union-attr]
        return CompilerResult(
            state.text, decision.text if finished else None, decision.thought if decision else None,
            list(state.rounds), observations, failures, tasks, events, not finished and not partial,
            timings, usage, by_model, not partial)
