"""The records of the LLMCompiler loop: each round's plan, run and verdict, and what a question produced.

``Round`` is what the loop keeps per plan (``LLMCompiler`` fills it in, ``prompts`` shows it to the
models, ``CompilerResult.rounds`` hands it to the caller); ``JoinerDecision`` is the joiner's answer
as ``prompts.parse_joiner_output`` reads it; ``CompilerResult`` and ``Timings`` are what
``LLMCompiler.run`` returns (and what an error raised after tools ran carries as ``result``). Plain
records: this module runs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional

from .errors import LLMCompilerError
from .llm import Usage
from .plan import Task
from .results import Event, RunResult, TaskFailure

__all__ = ["Round", "JoinerDecision", "CompilerResult", "Timings"]


class JoinerDecision(NamedTuple):
    """The joiner's answer, parsed: ``action`` is ``"finish"`` or ``"replan"``; ``text`` is the answer
    or the reason; ``thought`` the text before the action (None when there is none)."""

    action: str
    text: str
    thought: Optional[str] = None


@dataclass
class Round:
    """One plan, its run and the joiner's verdict. Times are ``time.perf_counter()`` values.

    ``plan`` is the planner's text as received until the plan ended; ``tasks`` the tasks added to the
    run, in order; ``parsed_at`` when each was added. ``plan_error`` is the PlanError or ToolCallError
    that stopped reading the plan, if any. ``decision`` is the joiner's parsed answer (None when the
    joiner was not asked); ``replan_reason`` why another plan was wanted (None when the round ended
    with an answer).
    """

    number: int
    first_index: int
    plan: str = ""
    tasks: List[Task] = field(default_factory=list)
    parsed_at: Dict[int, float] = field(default_factory=dict)
    plan_error: Optional[LLMCompilerError] = None
    result: Optional[RunResult] = None
    joiner: Optional[str] = None
    decision: Optional[JoinerDecision] = None
    replan_reason: Optional[str] = None
    planning_started: float = 0.0
    planning_finished: float = 0.0
    joining_started: Optional[float] = None
    joining_finished: Optional[float] = None

    @property
    def execution(self) -> Optional[tuple]:
        """``(first task start, last task end)`` of this round, or None when no task started."""
        starts = [e.time for e in self.result.events if e.kind == "started"] if self.result else []
        if not starts:
            return None
        ends = [e.time for e in self.result.events if e.kind in ("finished", "failed", "cancelled")]
        return min(starts), max(ends + starts)


@dataclass
class Timings:
    """Seconds spent per phase, summed over rounds (see ``compiler``'s module docstring)."""

    planning: float = 0.0
    execution: float = 0.0
    joining: float = 0.0
    overlap: float = 0.0
    total: float = 0.0


@dataclass
class CompilerResult:
    """What ``LLMCompiler.run`` produced, or, as an error's ``result``, what it had when it stopped.

    ``answer`` is the joiner's final answer (the text inside ``Finish(...)``), None when the loop ended
    without one (``replans_exhausted``, or an error). ``observations``, ``failures`` and ``tasks`` are
    keyed by task index across all plans; ``events`` are every scheduler event, in order; ``rounds``
    the per-plan details. ``usage`` sums every model's token usage, None when no model reported any;
    ``usage_by_model`` has it per model name (planner and joiner apart when they differ).
    ``complete`` is False for the partial result an error carries.
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
    usage_by_model: Dict[str, Usage] = field(default_factory=dict)
    complete: bool = True

    @property
    def plans(self) -> List[str]:
        """The text of every plan, in order."""
        return [round_.plan for round_ in self.rounds]

    @property
    def replans(self) -> int:
        """How many times a new plan was made (plans - 1)."""
        return max(0, len(self.rounds) - 1)

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
            if round_.planning_finished:
                found.append((f"planner {round_.number}", round_.planning_started, round_.planning_finished))
            if round_.joining_started is not None and round_.joining_finished is not None:
                found.append((f"joiner {round_.number}", round_.joining_started, round_.joining_finished))
        return found
