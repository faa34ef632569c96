"""Every exception llmcompiler raises. This module imports nothing from the package.

The tree, and who raises what:

    LLMCompilerError
      PlanError (ValueError)               the plan text or task list is wrong
        PlanSyntaxError                      a line is not '<n>. tool(literal args)'
        DuplicateTaskError                   two tasks share an index
        UnknownReferenceError                $N names no earlier task
        CycleError                           tasks given as a list depend on each other in a loop
      ToolError (TypeError)                the tool registry was asked something it cannot do
        ToolDefinitionError                  a tool cannot be registered as given
          ToolConfigError                    a tool config file has problems (every one is listed)
        ToolCallError                        a task's arguments do not fit its tool's signature
      RunError (RuntimeError)              a run could not go on as asked
        RunClosedError                       a task was added to a run that was closed or cancelled
        RunTimeoutError (TimeoutError)       a run or baseline did not finish in time
        TaskTimeoutError (TimeoutError)      a task ran past its tool's timeout (kept in its TaskFailure)
        WorkerDiedError                      the worker process running a task died (in its TaskFailure)
        StoreError                           the observation store failed (e.g. its manager died)
        ProcessStartError                    worker processes cannot be started safely from here
    RenderError (ValueError)               a value's own __str__ failed where its exact text was needed
    WorkerReturnError (TypeError)          a call's value or exception cannot come back from its worker
      SubstitutionError                    ... while filling "$N" into a task's string argument
      LLMError (RuntimeError)              talking to a language model failed
        LLMConnectionError (ConnectionError)
        LLMHTTPError                         the server answered with an HTTP error status
        LLMTimeoutError (TimeoutError)       the server stalled
        JoinerOutputError (ValueError)       the joiner's text fits neither Finish(...) nor Replan(...)

Errors carry their evidence as attributes (``line``, ``task``, ``tool``, ``cycle``) so callers need not
parse messages. An error raised after tools ran carries what was computed as ``result``: a
``RunResult`` (``RunTimeoutError`` and ``StoreError`` from ``Engine.run``) or the compiler's partial
``CompilerResult`` (every error ``LLMCompiler.run``/``arun`` raises once a question has started).
"""

from __future__ import annotations

from typing import Optional, Sequence

__all__ = [
    "LLMCompilerError",
    "PlanError",
    "PlanSyntaxError",
    "DuplicateTaskError",
    "UnknownReferenceError",
    "CycleError",
    "ToolError",
    "ToolDefinitionError",
    "ToolCallError",
    "RunError",
    "RunClosedError",
    "RunTimeoutError",
    "StoreError",
    "TaskTimeoutError",
    "WorkerDiedError",
    "LLMError",
    "LLMConnectionError",
    "LLMHTTPError",
    "LLMTimeoutError",
    "JoinerOutputError",
    "RenderError",
    "ProcessStartError",
    "WorkerReturnError",
    "SubstitutionError",
    "ToolConfigError",
]


class LLMCompilerError(Exception):
    """Base of every error raised by llmcompiler."""


# -- plans -------------------------------------------------------------------------------------------


class PlanError(LLMCompilerError, ValueError):
    """A plan (text or task list) is invalid.

    ``line`` is the 1-based line of the plan text where the problem is (None for task lists);
    ``task`` is the index of the task concerned, when there is one.
    """

    def __init__(self, message: str, *, line: Optional[int] = None, task: Optional[int] = None):
        super().__init__(message)
        self.line = line
        self.task = task


class PlanSyntaxError(PlanError):
    """A plan line is not of the form ``<n>. tool(args)`` with literal arguments.

    ``text`` is the offending line (or fragment) as written.
    """

    def __init__(
        self,
        message: str,
        *,
        line: Optional[int] = None,
        task: Optional[int] = None,
        text: str = "",
    ):
        super().__init__(message, line=line, task=task)
        self.text = text


class DuplicateTaskError(PlanError):
    """Two tasks of one plan (or run) have the same index."""


class UnknownReferenceError(PlanError):
    """A task refers to (or declares a dependency on) a task that is not an earlier task.

    ``reference`` is the index referred to.
    """

    def __init__(
        self,
        message: str,
        *,
        line: Optional[int] = None,
        task: Optional[int] = None,
        reference: Optional[int] = None,
    ):
        super().__init__(message, line=line, task=task)
        self.reference = reference


class CycleError(PlanError):
    """Tasks given as a list depend on each other in a loop. ``cycle`` lists the indices, first == last."""

    def __init__(self, message: str, *, cycle: Sequence[int]):
        super().__init__(message, task=cycle[0] if cycle else None)
        self.cycle = list(cycle)


# -- tools -------------------------------------------------------------------------------------------


class ToolError(LLMCompilerError, TypeError):
    """Base of the registry's errors. ``tool`` names the tool concerned."""

    def __init__(self, message: str, *, tool: Optional[str] = None):
        super().__init__(message)
        self.tool = tool


class ToolDefinitionError(ToolError):
    """A tool cannot be registered as given (bad name, bad path, unpicklable process tool, ...)."""


class ToolCallError(ToolError):
    """A task cannot call its tool: unknown tool, or arguments that do not bind to its signature.

    ``task`` is the task's index.
    """

    def __init__(self, message: str, *, tool: Optional[str] = None, task: Optional[int] = None):
        super().__init__(message, tool=tool)
        self.task = task


# -- runs --------------------------------------------------------------------------------------------


class RunError(LLMCompilerError, RuntimeError):
    """A run could not go on as asked."""


class RunClosedError(RunError):
    """A task was added to a run after ``close()`` or ``cancel()``: the caller closed it."""


class RunTimeoutError(RunError, TimeoutError):
    """A run (or the sleep-retry baseline) did not finish within its timeout."""


class TaskTimeoutError(RunError, TimeoutError):
    """A task ran past its tool's timeout. Found in the task's ``TaskFailure``, not raised to callers."""


class WorkerDiedError(RunError):
    """The worker process running a task died (killed, crashed, ``os._exit``). Found in the task's
    ``TaskFailure``; the pool was replaced and other tasks went on."""


class StoreError(RunError):
    """The observation store broke (for example, its manager process died). The cause is chained."""


# -- language models ---------------------------------------------------------------------------------


class LLMError(LLMCompilerError, RuntimeError):
    """Talking to a language model failed."""


class LLMConnectionError(LLMError, ConnectionError):
    """The server could not be reached. The message names the URL (never the API key)."""


class LLMHTTPError(LLMError):
    """The server answered with an HTTP error. ``status`` and ``body`` (its start) are kept."""

    def __init__(self, message: str, *, status: int, body: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body


class LLMTimeoutError(LLMError, TimeoutError):
    """The server stopped sending for longer than the client's timeout."""


class JoinerOutputError(LLMError, ValueError):
    """The joiner's answer fits neither ``Finish(...)`` nor ``Replan(...)``. ``text`` is the raw answer."""

    def __init__(self, message: str, *, text: str):
        super().__init__(message)
        self.text = text


class RenderError(LLMCompilerError, ValueError):
    """A value could not be turned into its exact text (its ``__str__`` raised), e.g. while filling
    ``"... $1 ..."`` into a string argument. ``value_type`` names the value's type."""

    def __init__(self, message: str, *, value_type: str = ""):
        super().__init__(message)
        self.value_type = value_type


class ProcessStartError(RunError):
    """Worker processes cannot be started safely from where the run was started: the main script
    starts them from top-level code outside ``if __name__ == "__main__":``, which every spawned worker
    would run again. Raised by the process pool before any process starts; ``path`` and ``line`` say
    where. Found in the process task's ``TaskFailure``; thread tools are unaffected."""

    def __init__(self, message: str, *, path: str = "", line: int = 0):
        super().__init__(message)
        self.path = path
        self.line = line


class SubstitutionError(RenderError):
    """An observation's ``str()`` failed while it was filled into a task's string argument
    (``"the result is $1"``). ``task`` is the task whose argument it was, ``reference`` the task
    referred to, ``argument`` names the argument (``argument 'q'`` or ``argument 2``). The original
    error is the cause."""

    def __init__(self, message: str, *, task: int, reference: int, argument: str, value_type: str = ""):
        super().__init__(message, value_type=value_type)
        self.task = task
        self.reference = reference
        self.argument = argument


class ToolConfigError(ToolDefinitionError):
    """A tool config file (``config.load_config``) cannot be served as written. ``problems`` lists every
    problem found, each a ``config.ConfigProblem`` (which entry, what is wrong, what to do); ``path`` is
    the file. Raised once, after every entry was checked."""

    def __init__(self, message: str, *, path: str = "", problems: Sequence[object] = ()):
        super().__init__(message)
        self.path = path
        self.problems = list(problems)


class WorkerReturnError(LLMCompilerError, TypeError):
    """What a call's outcome became when its value or its exception could not be sent back from the
    worker process (it cannot be pickled there, or unpickled here). The message names the type; the
    tool's own traceback text, when there was one, is kept in the task's ``TaskFailure``."""
