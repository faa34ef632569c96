"""The command line: ``python -m llmcompiler {run,ask,demo,tools}`` (also the ``llmcompiler`` script).

* ``run PLAN_FILE --tools MODULE``: execute a written plan (no model) and print each observation and
  the timeline.
* ``ask "QUESTION" --tools MODULE``: the whole loop against an OpenAI-compatible server.
* ``demo``: the whole loop offline, on ``examples.py``'s tools and scripted model.
* ``tools --tools MODULE | --config FILE``: list what is served (signature, executor, limits); ``run``
  and ``ask`` also take their tools from ``--config FILE`` (a TOML or JSON file, see ``config``).

Exit codes:

* 0: success. In ``ask`` and ``demo`` that means a final answer, even if some task failed on the way
  (recovering by replanning is the loop's job).
* 1: a failing run (in ``run`` a task failed or was skipped; in ``ask``/``demo`` no final answer), or an
  error while running (a model call failed, the joiner's answer could not be read, ...).
* 2: bad arguments or input, before anything runs: argparse's own errors, and ours (an unreadable plan
  file, an unimportable tools module, a plan that cannot be read or does not fit the tools), ours
  always as one line ``llmcompiler: error: ...`` on stderr.
* 130: interrupted.

For ``--tools``, the current directory is put on ``sys.path`` (as ``python -m`` does), so a module next
to you can be named.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, TextIO

from . import trace
from .compiler import CompilerResult, LLMCompiler
from .errors import LLMCompilerError, PlanError, ToolCallError, ToolDefinitionError
from .llm import OpenAIChat
from .plan import Task, call_text, parse_plan
from .engine import Engine
from .results import RunInterrupted, RunResult
from .rounds import Round
from .tools import ToolRegistry

__all__ = ["main", "build_parser"]

PROG = "llmcompiler"


class _InputError(Exception):
    """Our own validation failed: reported as one ``llmcompiler: error:`` line, exit code 2."""


# -- arguments ---------------------------------------------------------------------------------------


def _number(convert: Any, minimum: float, strict: bool, expected: str) -> Any:
    """An argparse type: ``convert(text)``, finite and at least (or, ``strict``, above) ``minimum``."""
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (value > minimum if strict else value >= minimum) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, 0, True, "a positive integer")
_count = _number(int, 0, False, "an integer >= 0")
_seconds = _number(float, 0, False, "a finite number of seconds >= 0")
_positive_seconds = _number(float, 0, True, "a finite number of seconds > 0")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Parallel function calling for LLM agents (LLMCompiler), standard library only.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="execute a plan file (no LLM) and show what ran in parallel",
                              description="Execute a written plan with tools from a module; print every "
                                          "observation (or failure) and a timeline.")
    run.add_argument("plan_file", metavar="PLAN_FILE", help="the plan text ('-' reads standard input)")
    _tool_options(run)
    run.set_defaults(handler=_run_command)

    ask = commands.add_parser("ask", help="answer a question with an OpenAI-compatible model",
                              description="Plan, run tools in parallel and join, with a real model.")
    ask.add_argument("question", metavar="QUESTION")
    _tool_options(ask)
    ask.add_argument("--base-url", help="the server's API base URL (default: $OPENAI_BASE_URL or OpenAI)")
    ask.add_argument("--model", help="the model name (default: $OPENAI_MODEL or gpt-4o-mini)")
    ask.add_argument("--api-key-env", metavar="VAR",
                     help="the environment variable holding the API key (default: OPENAI_API_KEY, "
                          "optional for local servers)")
    ask.add_argument("--max-replans", type=_count, default=2, metavar="N",
                     help="new plans allowed (default 2)")
    ask.add_argument("--timeout", type=_positive_seconds, default=60.0, metavar="SECONDS",
                     help="longest wait for the server to send data (default 60)")
    ask.set_defaults(handler=_ask_command)

    demo = commands.add_parser("demo", help="the whole loop offline, with example tools and a scripted model",
                               description="Run the LLMCompiler loop on example tools with a scripted "
                                           "planner and joiner: no network, no API key.")
    demo.add_argument("--delay", type=_seconds, default=0.02, metavar="SECONDS",
                      help="pause before each chunk the scripted model streams (default 0.02)")
    demo.add_argument("--trace", metavar="FILE", help="also write a Chrome trace (JSON) of the run")
    demo.set_defaults(handler=_demo_command)
    _add_tools_command(commands)
    return parser


def _tool_options(command: argparse.ArgumentParser) -> None:
    _tool_source_options(command)
    command.add_argument("--max-workers", type=_positive_int, metavar="N",
                         help="thread pool size (default 32)")
    command.add_argument("--lenient", action="store_true", help="accept sloppy plan lines and arguments")
    command.add_argument("--trace", metavar="FILE", help="also write a Chrome trace (JSON) of the run")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or argparse's own one-line error (exit 2)
        return stop.code if isinstance(stop.code, int) else 2
    try:
        if getattr(args, "trace", None):
            _check_writable(args.trace)
        return args.handler(args)
    except _InputError as error:
        return _fail(error, 2)
    except LLMCompilerError as error:  # a model call failed (LLMError), or the engine did
        return _fail(error, 1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """The reader of our output went away (as with `| head`): send the rest to devnull, so Python
    does not complain again when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (a captured stdout): nothing to silence
        pass


def _fail(error: BaseException, code: int) -> int:
    message = " ".join(str(error).split())
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


# -- inputs ------------------------------------------------------------------------------------------


def _check_writable(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise _InputError(f"cannot write trace file {path!r}: no directory {folder!r}")


def _read_plan(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as error:
        raise _InputError(f"cannot read plan file {path!r}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise _InputError(f"cannot read plan file {path!r}: not UTF-8 text ({error.reason})") from None


def _load_tools(module: str) -> ToolRegistry:
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)  # like `python -m`: a tools module in the current directory is found
    try:
        return ToolRegistry.from_module(module)
    except ToolDefinitionError as error:
        raise _InputError(str(error)) from None


def _write_trace(path: Optional[str], source: Any, phases: Sequence[tuple] = ()) -> bool:
    if not path:
        return True
    try:
        trace.write_chrome_trace(source, path, phases=phases)
    except OSError as error:
        print(f"{PROG}: error: cannot write trace file {path!r}: {error.strerror or error}", file=sys.stderr)
        return False
    print(f"\nTrace written to {path} (open it in https://ui.perfetto.dev or chrome://tracing).")
    return True


# -- output ------------------------------------------------------------------------------------------


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _outcome_lines(tasks: Dict[int, Task], observations: Dict[int, Any], failures: Dict[int, Any],
                   limit: int = 300) -> List[str]:
    lines = []
    for idx in sorted(tasks):
        call = f"{idx}. {call_text(tasks[idx])}"
        if idx in observations:
            lines.append(f"{call} -> {_shorten(str(observations[idx]), limit)}")
        elif idx in failures:
            failure = failures[idx]
            if failure.kind == "skipped":
                lines.append(f"{call} SKIPPED: it depends on task {failure.cause}, which did not finish")
            else:
                detail = f": {failure.error_type}: {failure.message}" if failure.error_type else ""
                lines.append(f"{call} {failure.kind.upper()}{_shorten(detail, limit)}")
        else:
            lines.append(f"{call} (no result)")
    return lines


class _Progress:
    """Prints a question's progress, round by round: the round's heading as soon as its first task is
    parsed, then, once the joiner has decided, the round's log in time order: plan lines as parsed,
    task starts and ends, and the verdict. (Logged per round rather than per event as it comes, so the
    lines are in time order even when worker threads report an event a little late.) Called on the
    caller's thread only."""

    _EVENTS = {"started": "start", "finished": "done", "failed": "failed", "skipped": "skipped",
               "cancelled": "cancelled"}

    def __init__(self, out: TextIO, origin: float):
        self._out = out
        self._origin = origin
        self._round = 1
        self._header_shown = False

    def _print(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def _header(self) -> None:
        if not self._header_shown:
            self._header_shown = True
            self._print(f"\nPlan {self._round} (streamed: each task starts as soon as its line is complete)")

    def task(self, task: Task) -> None:
        self._header()

    def round(self, round_: Round) -> None:
        self._header()
        for at, _, what, text in sorted(self._log(round_)):
            self._print(f"  {at - self._origin:6.2f}s  {what:<8} {text}")
        self._round += 1
        self._header_shown = False

    def _log(self, round_: Round) -> List[tuple]:
        """``(time, order, label, text)`` of everything that happened in the round; at equal times a
        task's thought comes first, then its plan line, then events, then the verdict."""
        log = []
        for task in round_.tasks:
            at = round_.parsed_at[task.idx]
            if task.thought:
                log.append((at, 0, "thought", _shorten(task.thought, 100)))
            log.append((at, 1, "plan", f"{task.idx}. {call_text(task)}"))
        for event in round_.result.events if round_.result else ():
            if event.kind in self._EVENTS:
                where = f"  [{event.worker}]" if event.worker else ""
                log.append((event.time, 2, self._EVENTS[event.kind], f"{event.task}. {event.tool}{where}"))
        if round_.plan_error is not None:
            log.append((round_.planning_finished, 1, "error", _shorten(str(round_.plan_error), 120)))
        now = round_.joining_finished or time.perf_counter()
        if round_.decision is not None:
            verb = "Finish" if round_.decision.action == "finish" else "Replan"
            log.append((now, 3, "joiner", f"{verb}({_shorten(round_.decision.text, 100)})"))
        elif round_.replan_reason is not None:
            log.append((now, 3, "replan", _shorten(round_.replan_reason, 100)))
        return log


def _report(result: CompilerResult, out: TextIO) -> None:
    """The answer, the results of every task, the timeline and where the time went."""
    print("\nResults:", file=out)
    for line in _outcome_lines(result.tasks, result.observations, result.failures, 120):
        print(f"  {line}", file=out)
    print("\nTimeline (# ran, x failed, ~ the model streaming):", file=out)
    print(trace.timeline(result, phases=result.phases()), file=out)
    if result.finished:
        print(f"\nAnswer: {result.answer}", file=out)
    else:
        print(f"\nNo answer: the joiner still wanted a new plan after {result.replans} replan(s) "
              "(the limit).", file=out)
    timings = result.timings
    serial = trace.serial_time(result)
    parallel = sum(trace.makespan(round_.result) for round_ in result.rounds)
    sequential = timings.planning + serial + timings.joining
    print("\nTime:", file=out)
    print(f"  tool calls one by one (sum of their durations)    {serial:6.2f} s", file=out)
    print(f"  tool calls as run here (per plan, first to last)  {parallel:6.2f} s"
          f"{_saving(serial, parallel)}", file=out)
    print(f"  plan, then call one by one, then join             {sequential:6.2f} s", file=out)
    print(f"  this run, end to end (plans stream into the run)  {timings.total:6.2f} s"
          f"{_saving(sequential, timings.total)}", file=out)
    print(f"  planning {timings.planning:.2f} s, execution {timings.execution:.2f} s "
          f"({timings.overlap:.2f} s of it while the plan was streaming), joining {timings.joining:.2f} s",
          file=out)
    if result.usage is not None:
        usage = result.usage
        print(f"  tokens: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion = "
              f"{usage.total_tokens}", file=out)
    else:
        print("  tokens: not reported by the model", file=out)


def _saving(before: float, after: float) -> str:
    if after <= 0 or before <= after:
        return ""
    return f"   ({before - after:.2f} s saved, {before / after:.1f}x faster)"


# -- commands ----------------------------------------------------------------------------------------


def _run_command(args: argparse.Namespace) -> int:
    text = _read_plan(args.plan_file)
    registry = _load_registry(args)
    name = "<stdin>" if args.plan_file == "-" else args.plan_file
    try:
        tasks = parse_plan(text, lenient=args.lenient)
        for task in tasks:
            registry.check(task)
    except (PlanError, ToolCallError) as error:
        raise _InputError(f"{name}: {error}") from None
    with Engine(registry, max_workers=args.max_workers) as engine:
        try:
            result = engine.run(tasks)
        except RunInterrupted as interrupted:
            _print_run(interrupted.result)
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
    _print_run(result)
    written = _write_trace(args.trace, result)
    return 0 if result.ok and written else 1


def _print_run(result: RunResult) -> None:
    for line in _outcome_lines(result.tasks, result.observations, result.failures):
        print(line)
    print()
    print(trace.timeline(result))
    serial, span = trace.serial_time(result), trace.makespan(result)
    print(f"\n{len(result.tasks)} tasks, {len(result.failures)} failed or skipped; one by one "
          f"{serial:.2f} s, as run {span:.2f} s{_saving(serial, span)}")


def _ask_command(args: argparse.Namespace) -> int:
    registry = _load_registry(args)
    variable = args.api_key_env or "OPENAI_API_KEY"
    api_key = os.environ.get(variable) or None
    if args.api_key_env and api_key is None:
        raise _InputError(f"the environment variable {args.api_key_env} (--api-key-env) is not set")
    try:
        llm = OpenAIChat(args.model, base_url=args.base_url, api_key=api_key, timeout=args.timeout)
    except ValueError as error:
        raise _InputError(str(error)) from None
    print(f"Question: {args.question}")
    print(f"Model: {llm.model} at {llm.base_url}")
    return _answer(LLMCompiler(llm, registry, max_replans=args.max_replans, max_workers=args.max_workers,
                               lenient=args.lenient), args.question, args.trace)


def _demo_command(args: argparse.Namespace) -> int:
    from .examples import DEMO_QUESTION, demo_llm, example_registry

    registry = example_registry()
    print("LLMCompiler demo: a scripted planner and joiner (no network), real tools run in parallel.")
    print("I/O-like tools sleep as a network call would; simulate_growth is CPU-bound and runs in "
          "worker processes.\n")
    print("Tools:")
    for line in registry.describe().splitlines():
        print(f"  {line}")
    print(f"\nQuestion: {DEMO_QUESTION}")
    return _answer(LLMCompiler(demo_llm(args.delay), registry), DEMO_QUESTION, args.trace)


def _answer(compiler: LLMCompiler, question: str, trace_path: Optional[str]) -> int:
    """Run the loop with live progress, then print the report; the exit code."""
    progress = _Progress(sys.stdout, time.perf_counter())
    with compiler:
        result = compiler.run(question, on_task=progress.task, on_round=progress.round)
    _report(result, sys.stdout)
    written = _write_trace(trace_path, result, result.phases())
    return 0 if result.finished and written else 1


# -- the tool source and the tools command -------------------------------------------------------------


def _tool_source_options(command: argparse.ArgumentParser) -> None:
    """``--tools MODULE`` or ``--config FILE``: exactly one is required."""
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--tools", metavar="MODULE",
                        help="module with the tools: its 'registry' or 'tools' ToolRegistry, or its "
                             "@tool functions")
    source.add_argument("--config", metavar="FILE",
                        help="a TOML or JSON file listing the tools by 'module:attr' path, with their "
                             "executor, timeout, retries, ... (see llmcompiler.config)")


def _add_tools_command(commands: Any) -> None:
    tools = commands.add_parser("tools", help="list the tools a module or config file serves",
                                description="List each tool: its call signature, executor, limits "
                                            "(timeout, retries, max_concurrency, cache) and description.")
    _tool_source_options(tools)
    tools.add_argument("--json", action="store_true",
                       help="print the tools as JSON, with their function-calling schemas")
    tools.set_defaults(handler=_tools_command)


def _load_registry(args: argparse.Namespace) -> ToolRegistry:
    """The tools named by ``--config FILE`` or ``--tools MODULE``; _InputError when they cannot be
    served (a config file's problems are printed first, one per line)."""
    if args.config is None:
        return _load_tools(args.tools)
    from .config import load_config
    from .errors import ToolConfigError

    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)  # as for --tools: modules next to you can be named
    try:
        return load_config(args.config)
    except ToolConfigError as error:
        if len(error.problems) == 1:
            raise _InputError(f"{args.config}: {error.problems[0]}") from None
        # Every problem on a line of its own, then the one error line (which is kept to one line).
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        raise _InputError(f"{args.config}: {len(error.problems)} problems in the tool config (listed "
                          "above)") from None


def _tools_command(args: argparse.Namespace) -> int:
    import json

    from .tool_listing import listing, tool_record

    registry = _load_registry(args)
    try:
        if args.json:
            print(json.dumps([tool_record(item) for item in registry], indent=2, ensure_ascii=False))
        else:
            print("\n".join(listing(registry, args.config or args.tools)))
    except ToolDefinitionError as error:  # a path tool of a module that does not import
        raise _InputError(str(error)) from None
    return 0
