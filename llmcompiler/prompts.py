"""What the planner and joiner models are told, and how the joiner's answer is read.

* ``planner_messages``: the planner's system prompt (``PLANNER_SYSTEM``: the tools, the plan format,
  worked examples) and the question, with every earlier round and the task number to start at.
* ``joiner_messages``: the joiner's reply format (``JOINER_SYSTEM``), the question and every round's
  results; in the last round, the instruction that no new plan is possible.
* ``parse_joiner_output``: ``Thought: ...`` / ``Action: Finish(...)`` or ``Replan(...)`` -> a
  ``JoinerDecision``.

Pure text in and text out: no model is called here (``compiler`` does that), and each round is read
from its ``Round`` record. Every value shown (observations, error messages, a task's arguments) goes
through ``text.short_text``: a 100 MB string, an int of 5,000 digits, a recursive list or an object
whose ``__str__`` raises is shown shortened (or described), never crashing the prompt, and the
observation itself is left untouched.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence

from .errors import JoinerOutputError
from .plan import END_OF_PLAN, Task, call_text
from .results import TaskFailure
from .rounds import JoinerDecision, Round
from .text import short_text
from .tools import ToolRegistry

__all__ = ["PLANNER_SYSTEM", "JOINER_SYSTEM", "planner_messages", "joiner_messages", "parse_joiner_output"]


PLANNER_SYSTEM = """\
You plan tool calls that gather what is needed to answer a question. The calls run in parallel as \
soon as their inputs are ready, so make independent calls separate tasks and link tasks only when one \
needs another's output.

Tools:
{tools}

Plan format:
- One task per line: `<n>. tool(arguments)`, for example `2. search("population of Paris")`.
- Arguments are literals only: strings, numbers, True, False, None, lists, tuples and dicts. No \
variables, expressions or nested calls.
- `$N` stands for the output of task N, which must come earlier: alone as a whole argument \
(`tool($1)`) or inside a string (`"compare $1 with $2"`).
- A `Thought: ...` line before a task may explain it.
- Number the tasks in order from the number you are told to start at; never reuse a number.
- End the plan with the line `join()<END_OF_PLAN>`.
- Use only the tools listed above; the examples below use made-up tools.

Example:
Question: How many times taller is Mount Everest than the Eiffel Tower?
Start numbering at 1.
Thought: Both heights can be looked up at the same time.
1. search("height of Mount Everest")
2. search("height of the Eiffel Tower")
Thought: Divide them once both are known.
3. math("Mount Everest's height divided by the Eiffel Tower's height", context=[$1, $2])
join()<END_OF_PLAN>

Example of a new plan, after tasks 1-3 above ran and task 2 failed:
Start numbering at 4.
Thought: Task 1 already gave Mount Everest's height; search again for the tower only.
4. search("Eiffel Tower height in metres")
5. math("Mount Everest's height divided by the Eiffel Tower's height", context=[$1, $4])
join()<END_OF_PLAN>"""

JOINER_SYSTEM = """\
Tools were called to answer a question. Read what they returned, then either answer the question or \
ask for a new plan of tool calls.

Reply in this form:
Thought: <your reasoning about the results>
Action: Finish(<the answer to the question>)

or, when the results are not enough and more tool calls could get what is missing:
Thought: <your reasoning>
Action: Replan(<what is missing or went wrong, for the planner>)

Write exactly one Action. Do not state facts the results do not support.

Example:
Question: How many times taller is Mount Everest than the Eiffel Tower?
1. search('height of Mount Everest') -> Mount Everest is 8,849 m tall.
2. search('height of the Eiffel Tower') -> The Eiffel Tower is 330 m tall.
3. math(...) -> 26.8
Thought: Everest is 8,849 m and the tower 330 m, a ratio of 26.8.
Action: Finish(Mount Everest is about 26.8 times taller than the Eiffel Tower (8,849 m against 330 m).)"""

_LAST_ROUND = ("No new plan is possible now: answer with Action: Finish(...) from what is known, and "
               "say what could not be found.")


def _plan_body(text: str) -> str:
    end = text.find(END_OF_PLAN)
    return (text if end < 0 else text[:end]).strip()


def _round_text(round_: Round, limit: int, with_plan: bool) -> str:
    """One round for a prompt: the plan (optionally), each task's outcome, and why it was cut short."""
    lines = [f"Plan {round_.number}:"]
    if with_plan:
        lines += [_plan_body(round_.plan) or "(empty)", f"Results of plan {round_.number}:"]
    result = round_.result
    for task in round_.tasks:
        if result is not None and task.idx in result.observations:
            outcome = f"-> {short_text(result.observations[task.idx], limit)}"
        elif result is not None and task.idx in result.failures:
            failure = result.failures[task.idx]
            outcome = f"{failure.kind}: " + short_text(_failure_text(failure), limit)
        else:
            outcome = "(no result)"
        lines.append(f"{task.idx}. {_call_shown(task, limit)} {outcome}")
    if not round_.tasks:
        lines.append("(no tasks ran)")
    if round_.plan_error is not None:
        lines.append(f"The plan was cut short by an error: {short_text(round_.plan_error, limit)}")
    if round_.replan_reason is not None:
        lines.append(f"Why a new plan was needed: {short_text(round_.replan_reason, limit)}")
    return "\n".join(lines)


def _call_shown(task: Task, limit: int) -> str:
    """The task's call as the plan wrote it, shortened; described when its arguments cannot be shown."""
    try:
        return short_text(call_text(task), limit)
    except (ValueError, RecursionError):  # repr() of an argument refused (a huge int, a deep nest)
        return f"{task.tool}(<arguments too large to show>)"


def _failure_text(failure: TaskFailure) -> str:
    if failure.kind == "skipped":
        return f"it depends on task {failure.cause}, which did not finish"
    if failure.kind == "cancelled":
        return failure.message or "it was cancelled"
    return f"{failure.error_type}: {failure.message}"


def planner_messages(tools: ToolRegistry, question: str, rounds: Sequence[Round], first_index: int,
                     observation_limit: int = 2000) -> List[dict]:
    """The planner's chat messages: the system prompt (tools, format, examples, rules) and the
    question, with every earlier round and the number to start at."""
    system = PLANNER_SYSTEM.format(tools=tools.describe() or "(none)")
    if not rounds:
        user = f"Question: {question}\nStart numbering at {first_index}."
    else:
        history = "\n\n".join(_round_text(round_, observation_limit, True) for round_ in rounds)
        user = (f"Question: {question}\n\nEarlier plans and what their tasks returned. Those tasks are "
                f"done: refer to their outputs with $N rather than running them again.\n\n{history}\n\n"
                f"Write a new plan for what is still missing. Start numbering at {first_index}.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def joiner_messages(question: str, rounds: Sequence[Round], last: bool,
                    observation_limit: int = 2000) -> List[dict]:
    """The joiner's chat messages: the reply format, the question, every plan's results, and (when
    ``last``) the instruction to finish."""
    history = "\n\n".join(_round_text(round_, observation_limit, False) for round_ in rounds)
    user = f"Question: {question}\n\n{history}"
    if last:
        user += f"\n\n{_LAST_ROUND}"
    return [{"role": "system", "content": JOINER_SYSTEM}, {"role": "user", "content": user}]


# -- the joiner's answer -----------------------------------------------------------------------------

_ACTION = re.compile(r"action\s*:\s*(finish|replan)\s*\(", re.IGNORECASE)
_BARE_ACTION = re.compile(r"^[ \t]*(finish|replan)[ \t]*\(", re.IGNORECASE | re.MULTILINE)
_NEXT_SECTION = re.compile(r"^[ \t]*(?:thought|action)[ \t]*:", re.IGNORECASE | re.MULTILINE)
_THOUGHT = re.compile(r"thought\s*:", re.IGNORECASE)


def parse_joiner_output(text: str, *, lenient: bool = False) -> JoinerDecision:
    """Parse ``Thought: ...`` / ``Action: Finish(answer)`` or ``Action: Replan(reason)``.

    Tolerant: "Action:" in any case and spacing, or left out when the line starts with Finish/Replan;
    the thought is optional; the answer may span lines. The action's text runs from after
    ``Finish(`` to the last ``)`` before the next ``Thought:``/``Action:`` line (or the end), so nested
    parentheses are kept; surrounding whitespace is stripped. The first action counts.

    Raises ``JoinerOutputError`` (with the raw ``text``) when there is no action or its ``(`` is never
    closed. With ``lenient``, such text is taken whole as the final answer instead.
    """
    match = _ACTION.search(text) or _BARE_ACTION.search(text)
    if match is None:
        if lenient and text.strip():
            return JoinerDecision("finish", text.strip(), None)
        raise JoinerOutputError(f"the joiner's answer has neither 'Action: Finish(...)' nor 'Action: "
                                f"Replan(...)': {_shown(text)}", text=text)
    action = match.group(1).lower()
    following = _NEXT_SECTION.search(text, match.end())
    body = text[match.end():following.start() if following else len(text)]
    close = body.rfind(")")
    if close < 0:
        if not lenient:
            raise JoinerOutputError(f"the joiner's {match.group(1)}( is never closed with ')': "
                                    f"{_shown(text)}", text=text)
        close = len(body)
    return JoinerDecision(action, body[:close].strip(), _thought(text[:match.start()]))


def _thought(before: str) -> Optional[str]:
    labels = list(_THOUGHT.finditer(before))
    thought = before[labels[-1].end():] if labels else before
    return thought.strip() or None


def _shown(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")
