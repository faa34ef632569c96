"""The dependency graph of one run: like ``graphlib.TopologicalSorter``, but growing while it runs.

Tasks are added at any time until ``close()``; a task may even name a dependency that has not been added
yet (it waits for it). ``done(n)`` returns the tasks it released, ``fail(n)`` the tasks that can now never
run (everything downstream of ``n``). Nothing here is thread-safe: the scheduler owns one graph per run
and calls it under its lock.

Invariant, for every task ``t`` still waiting: ``waiting[t]`` is the number of ``t``'s dependencies that
are not finished. A task is *ready* when that count reaches zero; it is then the caller's to run and
must come back through ``done`` or ``fail``.

Priority: each task has a ``cost`` (its tool's estimated duration; 1 when only counts matter) and a
``height``, the estimated time of the longest chain of known dependents after it (the sum of their
costs). When more tasks are ready than workers are free, the scheduler starts first the one with the most
time left on its chain (``priority(n)``: its cost plus its height), so the critical path never waits.
Heights grow as dependents arrive; a task already in the ready queue keeps the priority it had when it
became ready.

Phases are checked the way ``graphlib`` checks them: ``done(n)`` for a task that was never added or is
still waiting raises ``ValueError`` naming it.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Set, Tuple

__all__ = ["TaskGraph"]

# A task's state is implied by where it is: in ``waiting`` (count of unfinished deps), in ``active``
# (handed out, not yet done/failed), or in ``finished`` / ``dead`` (failed or skipped).


class TaskGraph:
    """Dependency bookkeeping for a run whose tasks arrive over time."""

    def __init__(self, finished: Iterable[int] = ()) -> None:
        self.waiting: Dict[int, int] = {}          # task -> unfinished dependency count (> 0)
        self.dependencies: Dict[int, Tuple[int, ...]] = {}
        self.dependents: Dict[int, List[int]] = {}  # task (added or not yet) -> tasks waiting on it
        self.height: Dict[int, int] = {}
        self.active: Set[int] = set()              # ready or running, not yet done/failed
        self.finished: Set[int] = set(finished)    # done, including tasks known from earlier runs
        self.dead: Set[int] = set()                # failed or skipped
        self.forward = False                       # a task named a dependency not added yet
        self.cost: Dict[int, float] = {}           # task -> estimated duration, when not 1.0

    def __contains__(self, idx: int) -> bool:
        return idx in self.dependencies or idx in self.finished or idx in self.dead

    @property
    def unfinished(self) -> int:
        """How many added tasks are neither finished nor dead."""
        return len(self.waiting) + len(self.active)

    def priority(self, idx: int) -> float:
        """The estimated time left on ``idx``'s longest chain, itself included (higher runs first)."""
        return self.height[idx] + self.cost.get(idx, 1.0)

    def add(
        self, idx: int, dependencies: Iterable[int], *, heights: bool = True, cost: float = 1.0
    ) -> Tuple[bool, Optional[int]]:
        """Add a task. Returns ``(ready, dead_dependency)``.

        ``ready`` is True when every dependency is already finished (the task is now the caller's to
        run). ``dead_dependency`` is a dependency that failed or was skipped: the task can never run and
        is marked dead; the caller reports it skipped. The caller checks for duplicates first.
        ``heights=False`` skips the height update (a batch then calls ``update_heights`` once).
        """
        deps = tuple(dependencies)
        self.dependencies[idx] = deps
        self.height.setdefault(idx, 0)
        if cost != 1.0:
            self.cost[idx] = cost
        for dep in deps:
            if dep in self.dead:
                self.dead.add(idx)
                return False, dep
        unfinished = 0
        for dep in deps:
            if dep not in self.finished:
                if dep not in self.dependencies:
                    self.forward = True
                unfinished += 1
                self.dependents.setdefault(dep, []).append(idx)
        if heights:
            self._raise_heights(idx)
        if unfinished:
            self.waiting[idx] = unfinished
            return False, None
        self.active.add(idx)
        return True, None

    def _raise_heights(self, idx: int) -> None:
        """Propagate ``idx``'s height to its unfinished ancestors (only as far as heights grow).

        In a DAG no height exceeds the number of tasks; a cycle (tasks added in a loop, found and
        failed at close) would raise heights for ever, so propagation stops at that bound."""
        bound = len(self.dependencies) * max(1.0, max(self.cost.values(), default=1.0))
        cost = self.cost
        stack = [idx]
        while stack:
            node = stack.pop()
            above = self.height[node] + cost.get(node, 1.0)
            if above > bound:
                continue
            for dep in self.dependencies.get(node, ()):
                if dep in self.finished or dep in self.dead:
                    continue
                if self.height.get(dep, -1) < above:
                    self.height[dep] = above
                    stack.append(dep)

    def update_heights(self, batch: Iterable[int]) -> None:
        """Recompute the heights of ``batch`` and their ancestors in one pass (reverse topological)."""
        nodes = [n for n in batch if n not in self.dead]
        pending = {n: 0 for n in nodes}
        for n in nodes:
            for dep in self.dependencies[n]:
                if dep in pending:
                    pending[dep] += 1
        order = [n for n in nodes if pending[n] == 0]
        cost = self.cost
        while order:
            node = order.pop()
            above = self.height[node] + cost.get(node, 1.0)
            for dep in self.dependencies[node]:
                if dep in pending:
                    if self.height[dep] < above:
                        self.height[dep] = above
                    pending[dep] -= 1
                    if pending[dep] == 0:
                        order.append(dep)
                elif dep in self.dependencies and self.height[dep] < above:
                    self.height[dep] = above
                    self._raise_heights(dep)

    def done(self, idx: int) -> List[int]:
        """Mark an active task finished; return the tasks this released (now active, the caller's).

        Raises ``ValueError`` when ``idx`` was never added, is still waiting, or is already over."""
        if idx not in self.active:
            raise ValueError(self._not_active(idx))
        self.active.remove(idx)
        self.finished.add(idx)
        released = []
        for dependent in self.dependents.pop(idx, ()):
            count = self.waiting.get(dependent)
            if count is None:  # already dead (another dependency failed)
                continue
            if count == 1:
                del self.waiting[dependent]
                self.active.add(dependent)
                released.append(dependent)
            else:
                self.waiting[dependent] = count - 1
        return released

    def _not_active(self, idx: int) -> str:
        if idx in self.waiting:
            return f"task {idx} is still waiting on {self.waiting[idx]} of its dependencies"
        if idx in self.finished or idx in self.dead:
            return f"task {idx} is already over"
        return f"task {idx} was never added"

    def fail(self, idx: int) -> List[int]:
        """Mark a task dead (failed); return every task downstream of it, now dead too (skipped)."""
        self.active.discard(idx)
        self.waiting.pop(idx, None)
        self.dead.add(idx)
        skipped = []
        stack = [idx]
        while stack:
            for dependent in self.dependents.pop(stack.pop(), ()):
                if self.waiting.pop(dependent, None) is not None:
                    self.dead.add(dependent)
                    skipped.append(dependent)
                    stack.append(dependent)
        return skipped

    def missing(self) -> List[int]:
        """Indices that waiting tasks depend on but that were never added (sorted)."""
        return sorted(dep for dep in self.dependents if dep not in self.dependencies)

    def find_cycle(self) -> List[int]:
        """A dependency cycle among waiting tasks, as ``[a, b, ..., a]``, or ``[]`` if there is none.

        Only a task that named a dependency before it was added can close a cycle: without one
        (``forward`` False) the answer is ``[]`` at once."""
        if not self.forward:
            return []
        colour: Dict[int, int] = {}  # 1 = on the current path, 2 = explored
        for start in sorted(self.waiting):
            if start in colour:
                continue
            path: List[int] = []
            stack = [(start, iter(self.dependencies.get(start, ())))]
            colour[start] = 1
            path.append(start)
            while stack:
                node, deps = stack[-1]
                dep = next((d for d in deps if d in self.waiting and colour.get(d) != 2), None)
                if dep is None:
                    colour[node] = 2
                    path.pop()
                    stack.pop()
                elif colour.get(dep) == 1:
                    return path[path.index(dep):] + [dep]
                else:
                    colour[dep] = 1
                    path.append(dep)
                    stack.append((dep, iter(self.dependencies.get(dep, ()))))
        return []

    def cancel_all(self) -> List[int]:
        """Mark every unfinished task dead; return them (sorted)."""
        pending = sorted(set(self.waiting) | self.active)
        self.dead.update(pending)
        self.waiting.clear()
        self.active.clear()
        self.dependents.clear()
        return pending
