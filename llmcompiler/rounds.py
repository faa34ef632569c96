"""The record of one round of the LLMCompiler loop: the plan, its run, and the joiner's verdict.

``Round`` is what the loop keeps per plan (``LLMCompiler`` fills it in, ``prompts`` shows it to the
models, ``CompilerResult.rounds`` hands it to the caller); ``JoinerDecision`` is the joiner's answer
as ``prompts.parse_joiner_output`` reads it. Plain records: this module runs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional

from .errors import LLMCompilerError
from .plan import Task
from .results import RunResult

__all__ = ["Round", "JoinerDecision"]


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
