"""The dependency graph of one run: like ``graphlib.TopologicalSorter``, but growing while it runs.

Tasks are added at any time until ``close()``; a task may even name a dependency that has not been added
yet (it waits for it). ``done(n, value)`` records n's observation and returns the tasks it released,
``fail(n)`` the tasks that can now never run (everything downstream of ``n``). Nothing here is
thread-safe: the scheduler owns one graph per run and calls it under its lock.

State: one ``_Node`` per task that is added and not over (waiting, or ready/running), and per dependency
named but not added yet (a *placeholder*, its ``deps`` None). A node goes when its task finishes or
fails, so a finished task costs nothing here but its entry in ``finished`` (the run's observations).
Invariant, for every waiting task ``t``: ``nodes[t].count`` is the number of ``t``'s dependencies not
finished. A task is *ready* when that count reaches zero; it is then the caller's to run and must come
back through ``done`` or ``fail``. A task added after one of its dependencies failed is dead at once
(count -1) until the caller's ``fail`` skips what already waits on it.

Priority: each task has a ``cost`` (its tool's estimated duration; 1 when only counts matter) and a
``height``, the estimated time of the longest chain of known dependents after it (the sum of their
costs). When more tasks are ready than workers are free, the scheduler starts first the one with the most
time left on its chain (``priority(n)``: its cost plus its height), so the critical path never waits.
Heights grow as dependents arrive; a task already in the ready queue keeps the priority it had when it
became ready.

Phases are checked the way ``graphlib`` checks them: ``done(n)`` for a task that was never added, is
still waiting or is already over raises ``ValueError`` naming it.
"""

from __future__ import annotations

from typing import Any, Collection, Dict, Iterable, List, Optional, Set, Tuple

from .validation import find_cycle

__all__ = ["TaskGraph"]

_DEAD = -1  # the count of a task added after a dependency failed (never released; ``fail`` removes it)


class _Node:
    """One unfinished task (or a placeholder for a dependency not added yet)."""

    __slots__ = ("deps", "count", "dependents", "height", "cost")

    def __init__(self) -> None:
        self.deps: Optional[Collection[int]] = None  # None: a placeholder, not added yet
        self.count = 0                               # unfinished dependencies; 0 ready or running
        self.dependents: Optional[List[int]] = None  # tasks added that wait on this one
        self.height = 0.0
        self.cost = 1.0


class TaskGraph:
    """Dependency bookkeeping for a run whose tasks arrive over time.

    ``finished`` maps tasks already finished (known from earlier plans) to their observations; the
    graph records every task it sees finish there (``done(n, value)``), so the scheduler passes its own
    observations dict and keeps one mapping of what finished."""

    def __init__(self, finished: Any = ()) -> None:
        self.nodes: Dict[int, _Node] = {}
        self.finished: Dict[int, Any] = finished if type(finished) is dict else dict.fromkeys(finished)
        self.dead: Set[int] = set()      # failed or skipped
        self.unfinished = 0              # added tasks neither finished nor dead
        self.forward = False             # a task named a dependency not added yet
        self._max_cost = 1.0             # the largest cost seen: bounds heights (see _raise_heights)

    def __contains__(self, idx: int) -> bool:
        node = self.nodes.get(idx)
        return (node is not None and node.deps is not None) or idx in self.finished or idx in self.dead

    # -- views (for failure paths and tests: each builds a new container) ----------------------------

    @property
    def waiting(self) -> Dict[int, int]:
        """Waiting tasks -> their count of unfinished dependencies."""
        return {idx: node.count for idx, node in self.nodes.items() if node.deps is not None and node.count > 0}

    @property
    def active(self) -> Set[int]:
        """Tasks handed out (ready or running), not yet done or failed."""
        return {idx for idx, node in self.nodes.items() if node.deps is not None and node.count == 0}

    @property
    def height(self) -> Dict[int, float]:
        """Unfinished tasks (and placeholders) -> their height."""
        return {idx: node.height for idx, node in self.nodes.items()}

    def is_waiting(self, idx: int) -> bool:
        node = self.nodes.get(idx)
        return node is not None and node.deps is not None and node.count > 0

    def dependents_of(self, idx: int) -> List[int]:
        """The tasks added that wait on ``idx`` (while it is unfinished)."""
        node = self.nodes.get(idx)
        return list(node.dependents or ()) if node is not None else []

    def priority(self, idx: int) -> float:
        """The estimated time left on ``idx``'s longest chain, itself included (higher runs first)."""
        node = self.nodes[idx]
        return node.height + node.cost

    # -- changes -------------------------------------------------------------------------------------

    def add(
        self, idx: int, dependencies: Iterable[int], *, heights: bool = True, cost: float = 1.0
    ) -> Tuple[bool, Optional[int]]:
        """Add a task. Returns ``(ready, dead_dependency)``.

        ``ready`` is True when every dependency is already finished (the task is now the caller's to
        run). ``dead_dependency`` is a dependency that failed or was skipped: the task can never run and
        is marked dead; the caller reports it skipped and calls ``fail(idx)`` to skip what waits on it.
        The caller checks for duplicates first. ``heights=False`` skips the height update (a batch then
        calls ``update_heights`` once).
        """
        # A tuple or frozenset (a Task's own) is kept as it is: no copy per task.
        deps = dependencies if type(dependencies) in (tuple, frozenset) else tuple(dependencies)
        nodes = self.nodes
        node = nodes.get(idx)
        if node is None:
            node = nodes[idx] = _Node()
        node.deps = deps
        if cost != 1.0:
            node.cost = cost
            if cost > self._max_cost:
                self._max_cost = cost
        dead = self.dead
        finished = self.finished
        count = 0
        for dep in deps:
            if dep in finished:
                continue
            if dep in dead:
                dead.add(idx)
                node.count = _DEAD
                return False, dep
            count += 1
        node.count = count
        self.unfinished += 1
        if count:
            for dep in deps:
                if dep not in finished:
                    above = nodes.get(dep)
                    if above is None:
                        above = nodes[dep] = _Node()
                    if above.deps is None:
                        self.forward = True
                    if above.dependents is None:
                        above.dependents = [idx]
                    else:
                        above.dependents.append(idx)
            if heights:
                self._raise_heights(idx)
        return count == 0, None

    def done(self, idx: int, value: Any = None) -> List[int]:
        """Mark a ready or running task finished with observation ``value``; return the tasks this
        released (now ready, the caller's).

        Raises ``ValueError`` when ``idx`` was never added, is still waiting, or is already over."""
        nodes = self.nodes
        node = nodes.get(idx)
        if node is None or node.count or node.deps is None:
            raise ValueError(self._not_active(idx))
        del nodes[idx]
        self.finished[idx] = value
        self.unfinished -= 1
        released = []
        if node.dependents:
            for dependent in node.dependents:
                waiter = nodes.get(dependent)
                if waiter is None:  # already dead (another dependency failed)
                    continue
                if waiter.count == 1:
                    waiter.count = 0
                    released.append(dependent)
                else:
                    waiter.count -= 1
        return released

    def _not_active(self, idx: int) -> str:
        node = self.nodes.get(idx)
        if node is not None and node.deps is not None and node.count > 0:
            return f"task {idx} is still waiting on {node.count} of its dependencies"
        if idx in self.finished or idx in self.dead:
            return f"task {idx} is already over"
        return f"task {idx} was never added"

    def fail(self, idx: int) -> List[int]:
        """Mark a task dead (failed); return every task downstream of it, now dead too (skipped)."""
        nodes = self.nodes
        node = nodes.pop(idx, None)
        if node is not None and node.deps is not None and node.count != _DEAD:
            self.unfinished -= 1
        self.dead.add(idx)
        skipped = []
        stack = [node]
        while stack:
            above = stack.pop()
            if above is None or not above.dependents:
                continue
            for dependent in above.dependents:
                waiter = nodes.get(dependent)
                if waiter is None or waiter.count <= 0:  # over, or dead at its adding
                    continue
                del nodes[dependent]
                self.dead.add(dependent)
                self.unfinished -= 1
                skipped.append(dependent)
                stack.append(waiter)
        return skipped

    def cancel_all(self) -> List[int]:
        """Mark every unfinished task dead; return them (sorted)."""
        pending = sorted(idx for idx, node in self.nodes.items() if node.deps is not None and node.count >= 0)
        self.dead.update(pending)
        self.nodes.clear()
        self.unfinished = 0
        return pending

    # -- what can never run ------------------------------------------------------------------------

    def missing(self) -> List[int]:
        """Indices that waiting tasks depend on but that were never added (sorted)."""
        return sorted(idx for idx, node in self.nodes.items()
                      if node.deps is None and node.dependents and idx not in self.dead)

    def find_cycle(self) -> List[int]:
        """A dependency cycle among waiting tasks, as ``[a, b, ..., a]``, or ``[]`` if there is none
        (``validation.find_cycle``, the one cycle finder, over the waiting tasks in index order).

        Only a task that named a dependency before it was added can close a cycle: without one
        (``forward`` False) the answer is ``[]`` at once."""
        if not self.forward:
            return []
        nodes = self.nodes
        return find_cycle({idx: nodes[idx].deps for idx in sorted(self.waiting)})  # type: ignore[misc]

    # -- heights -----------------------------------------------------------------------------------

    def _raise_heights(self, idx: int) -> None:
        """Propagate ``idx``'s height to its unfinished ancestors (only as far as heights grow).

        In a DAG no height exceeds the number of tasks times the largest cost; a cycle (tasks added in
        a loop, found and failed at close) would raise heights for ever, so propagation stops there."""
        nodes = self.nodes
        bound = (self.unfinished + 1) * self._max_cost
        stack = [nodes[idx]]
        while stack:
            node = stack.pop()
            above = node.height + node.cost
            if above > bound or not node.deps:
                continue
            for dep in node.deps:
                upper = nodes.get(dep)
                if upper is not None and upper.height < above and upper.count >= 0:
                    upper.height = above
                    stack.append(upper)

    def update_heights(self, batch: Iterable[int]) -> None:
        """Recompute the heights of ``batch`` and their ancestors in one pass (reverse topological).

        A batch numbered consecutively, in a graph where no task named a dependency before it was
        added (the form of a validated plan), is ordered already: one pass from its end, its heights
        in a list by position. Any other batch goes through ``_heights_by_counting``."""
        batch = list(batch)
        if batch and not self.forward and batch[-1] - batch[0] == len(batch) - 1 and \
                all(later - earlier == 1 for earlier, later in zip(batch, batch[1:])):
            if self._heights_from_the_end(batch[0], len(batch)):
                return
        self._heights_by_counting(batch)

    def _heights_from_the_end(self, first: int, size: int) -> bool:
        """Heights of tasks ``first`` .. ``first + size - 1``, from the last, each raising the tasks it
        depends on. Returns False at a dependency on a task of the batch numbered at or above its own
        (the pass has then set only heights that are lower bounds; the caller counts instead)."""
        nodes = self.nodes
        members = [nodes.get(idx) for idx in range(first, first + size)]
        heights = [0.0] * size
        for pos in range(size - 1, -1, -1):
            node = members[pos]
            if node is None or node.count < 0 or node.deps is None:
                continue
            height = heights[pos]
            if node.height < height:
                node.height = height
            above = node.height + node.cost
            for dep in node.deps:
                at = dep - first
                if 0 <= at < size:
                    if at >= pos:
                        return False
                    if heights[at] < above:
                        heights[at] = above
                else:
                    self._raise_dependency(dep, above)
        return True

    def _raise_dependency(self, dep: int, above: float) -> None:
        """Raise the height of ``dep``, outside the batch, to ``above`` and on up its ancestors."""
        upper = self.nodes.get(dep)
        if upper is not None and upper.height < above and upper.count >= 0:
            upper.height = above
            if upper.deps is not None:
                self._raise_heights(dep)

    def _heights_by_counting(self, batch: List[int]) -> None:
        """``update_heights`` for any batch: Kahn's order over the batch, by counting dependents."""
        nodes = self.nodes
        members = {}
        for idx in batch:
            node = nodes.get(idx)
            if node is not None and node.count >= 0 and node.deps is not None:
                members[idx] = node
        pending = dict.fromkeys(members, 0)
        for node in members.values():
            for dep in node.deps:  # type: ignore[union-attr]
                if dep in pending:
                    pending[dep] += 1
        order = [node for idx, node in members.items() if pending[idx] == 0]
        while order:
            node = order.pop()
            above = node.height + node.cost
            for dep in node.deps:  # type: ignore[union-attr]
                if dep in pending:
                    upper = members[dep]
                    if upper.height < above:
                        upper.height = above
                    pending[dep] -= 1
                    if pending[dep] == 0:
                        order.append(upper)
                else:
                    self._raise_dependency(dep, above)
