"""What a tool may ask to be given about the run it is part of: ``RunContext``.

A tool asks by annotating one parameter with ``RunContext``::

    @tool
    def summarise(text: str, ctx: RunContext) -> str:
        earlier = [ctx.observations[i] for i in sorted(ctx.observations) if i < ctx.task]
        ...

That parameter is not a plan argument: it never appears in ``describe()``, ``schemas()`` or signature
checks, and a plan that tries to set it is rejected like any unknown keyword. The scheduler fills it in
when the task starts: ``task`` is the task's own index and ``observations`` a read-only mapping of the
run's observations (task index -> value), including tasks known from earlier plans.

Thread and async tools read the run's own record. A process tool reads through the engine's
``store="manager"`` observation store, from its worker process; with a local store a process tool cannot
see the run's observations, and the run refuses to start it (``ToolCallError``, saying to use
``store="manager"``).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

__all__ = ["RunContext"]


class RunContext(NamedTuple):
    """Given to a tool parameter annotated ``RunContext``: the task's index and the run's observations.

    ``observations`` is read-only; looking up a task that has not finished raises ``KeyError``.
    """

    task: int
    observations: Mapping[int, Any]
