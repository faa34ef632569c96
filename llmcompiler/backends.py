"""What runs a submitted call, by executor kind: the process pools, the engine's event loop, and any
``concurrent.futures.Executor`` the engine was given. One object per engine; the scheduler asks it to
check a tool, submit an attempt, and stop attempts, and never needs to know which kind it is.

Kinds: ``"thread"`` (the engine's thread lane, not handled here), ``"process"``, ``"async"`` (coroutine
tools on one event loop thread of the engine's), and every name in ``Engine(executors={...})``.

Stopping differs by kind, as it must: a process call's worker is SIGKILLed (only the workers running the
stopped calls; other runs' calls caught in the pool's breakage are resubmitted at no cost); a coroutine
is cancelled; a call on another executor is cancelled if it has not started, else abandoned (a remote
worker cannot be killed from here).
"""

from __future__ import annotations

import threading
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Dict, Iterable, List, Mapping, Optional

from .calls import ProcessCall
from .errors import ToolCallError

__all__ = ["Backends", "BUILTIN_KINDS"]

BUILTIN_KINDS = ("thread", "process", "async")


class Backends:
    """The engine's ways of running submitted calls. Thread-safe; owns the event loop once started."""

    def __init__(self, pools: Any, executors: Optional[Mapping[str, Any]] = None) -> None:
        self.pools = pools
        self._executors = dict(executors or {})
        self._lanes: Dict[str, Any] = {}  # kind -> ExecutorLane, made on first use
        self._loop: Any = None
        self._lock = threading.Lock()

    @property
    def kinds(self) -> List[str]:
        return list(BUILTIN_KINDS) + sorted(self._executors)

    def check_tool(self, tool: Any, task: Any, shared_store: bool) -> None:
        """Raise ``ToolCallError`` when this engine cannot run ``task``'s tool as registered."""
        kind = tool.executor
        if kind not in BUILTIN_KINDS and kind not in self._executors:
            known = ", ".join(repr(k) for k in self.kinds)
            raise ToolCallError(f"task {task.idx}: tool '{tool.name}' runs on executor {kind!r}, which this "
                                f"engine does not have (it has {known}); pass Engine(executors="
                                f"{{{kind!r}: ...}})", tool=tool.name, task=task.idx)
        if getattr(tool, "context_parameter", None) is not None and kind not in ("thread", "async") \
                and not shared_store:
            raise ToolCallError(
                f"task {task.idx}: tool '{tool.name}' reads the run's observations (RunContext) from "
                f"another process, which only a shared store allows: use Engine(store='manager')",
                tool=tool.name, task=task.idx)

    def context_view(self, tool: Any, run: Any) -> Mapping[int, Any]:
        """The observations mapping a tool's ``RunContext`` gets: the run's own record in this process,
        the run's shared store from another."""
        if tool.executor in ("thread", "async"):
            return run.observations_view()
        from .store import StoreMapping

        return StoreMapping(run.store)

    def submit(self, kind: str, batch: List[Any], context: Any) -> Any:
        """Hand attempts over as one work item (a batch of several only for process calls); returns
        its future (its result a ``CallOutcome``, or a list of them for a batch)."""
        if kind == "process":
            future = self._submit_process(batch)
        else:
            (attempt,) = batch
            tool = attempt.tool
            if kind == "async":
                future = self._event_loop().submit(tool.func, attempt.args, attempt.kwargs, context)
            else:
                future = self._executor_lane(kind).submit(tool.process_target(), attempt.args,
                                                          attempt.kwargs)
        for attempt in batch:
            attempt.future = future
        return future

    def _submit_process(self, batch: List[Any]) -> Any:
        calls = [ProcessCall(a.token, a.tool.process_target(), a.args, a.kwargs) for a in batch]
        for _ in range(2):  # once more on a fresh pool if this one broke just now
            try:
                if len(calls) == 1:  # a chain's every step: the single-call path, one outcome back
                    generation, future = self.pools.submit_process(*calls[0])
                else:
                    generation, future = self.pools.submit_calls(calls)
                for attempt in batch:
                    attempt.generation = generation
                return future
            except BrokenProcessPool:
                self.pools.retire(self.pools.process_generation())
        raise BrokenProcessPool("the process pool broke twice while the call was being submitted")

    def stop(self, attempts: Iterable[Any]) -> List[Any]:
        """Stop these attempts' calls (cancelled or timed out): kill, cancel or abandon, by kind.
        Returns the process attempts that could not be stopped yet: handed to the pool, not begun in
        a worker (no worker runs them to be killed, and their work item can no longer be cancelled)."""
        by_generation: Dict[Any, List[Any]] = {}
        for attempt in attempts:
            future = attempt.future
            if future is not None and (future.done() or future.cancel()):
                continue  # over, or its work item had not started: nothing more to stop
            if attempt.kind == "process" and attempt.generation is not None:
                by_generation.setdefault(attempt.generation, []).append(attempt)
        unstopped = []
        for generation, group in by_generation.items():
            running = generation.running_tokens()
            self.pools.kill_tokens(generation, [a.token for a in group if a.token in running])
            unstopped += [a for a in group if a.token not in running]
        return unstopped

    def retire(self, attempt: Any) -> None:
        if attempt.generation is not None:
            self.pools.retire(attempt.generation)

    def dead_tokens(self, attempt: Any) -> set:
        generation = attempt.generation
        return generation.dead_tokens() if generation is not None else set()

    def _event_loop(self) -> Any:
        with self._lock:
            if self._loop is None:
                from .aioloop import AsyncLoop

                self._loop = AsyncLoop()
            return self._loop

    def _executor_lane(self, kind: str) -> Any:
        with self._lock:
            lane = self._lanes.get(kind)
            if lane is None:
                from .remote import ExecutorLane

                lane = self._lanes[kind] = ExecutorLane(self._executors[kind], kind)
            return lane

    def close(self) -> None:
        """Stop the event loop (cancelling what still runs on it). Given executors are the caller's:
        they are left running. Idempotent."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()
