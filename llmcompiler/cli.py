"""The command line: ``python -m llmcompiler {run,ask,demo,tools}`` (also the ``llmcompiler`` script).

* ``run PLAN_FILE --tools MODULE``: execute a written plan (no model) and print each observation and
  the timeline.
* ``ask "QUESTION" --tools MODULE``: the whole loop against an OpenAI-compatible server.
* ``demo``: the whole loop offline, on ``examples.py``'s tools and scripted model.
* ``tools --tools MODULE | --config FILE``: list what is served (signature, executor, limits); ``run``
  and ``ask`` also take their tools from ``--config FILE`` (a TOML or JSON file, see ``config``).

Every command takes ``--trace FILE`` (a Chrome trace-event file: open it in https://ui.perfetto.dev or
chrome://tracing), ``--timeline FILE`` (an SVG picture of the run), ``-q/--quiet`` (no live progress
line) and ``-v/--verbose`` (the package's log records on stderr: ``-v`` INFO, ``-vv`` DEBUG, one line
per task event). The progress line (``tasks: 3/8 done, 2 running, 1 failed``) is drawn on stderr only
when stderr is a terminal, and not with ``-v`` (log lines would tear it). ``ask --joiner-model NAME``
uses a second model, on the same server, for the joiner.

What is printed goes through ``console``: every value shortened, never a traceback for a value.
When an error is raised after tools ran and carries what was computed (``error.result``, a
``RunResult`` or a partial ``CompilerResult``), that is printed first: plan lines, results, timeline,
and the ``--trace``/``--timeline`` files are still written. Ctrl-C prints what was observed and exits
130.

Exit codes:

* 0: success. In ``ask`` and ``demo`` that means a final answer, even if some task failed on the way
  (recovering by replanning is the loop's job).
* 1: a failing run (in ``run`` a task failed or was skipped; in ``ask``/``demo`` no final answer), or an
  error while running (a model call failed, the joiner's answer could not be read, ...).
* 2: bad arguments or input, before anything runs: argparse's own errors, and ours (an unreadable plan
  file, an unimportable tools module, a plan that cannot be read or does not fit the tools), ours
  always as one line ``llmcompiler: error: ...`` on stderr (every error of ours is one line: exit 1
  or 2, never a traceback).
* 130: interrupted.

For ``--tools``, the current directory is put on ``sys.path`` (as ``python -m`` does), so a module next
to you can be named.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from typing import Any, Callable, Iterator, Optional, Sequence

from . import svg, trace
from .compiler import CompilerResult, LLMCompiler
from .console import ProgressLine, RoundPrinter, print_run, report, shorten
from .errors import LLMCompilerError, ToolDefinitionError
from .llm import OpenAIChat
from .plan import parse_plan
from .engine import Engine
from .results import Event, RunResult
from .tools import ToolRegistry

__all__ = ["main", "build_parser"]

PROG = "llmcompiler"
_log = logging.getLogger("llmcompiler.cli")


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
    # Also before the command (`llmcompiler -v run ...`); its own dest, as a command's default would
    # overwrite it.
    parser.add_argument("-v", "--verbose", action="count", default=0, dest="verbose_before",
                        help="log to stderr: -v at INFO, -vv at DEBUG")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="execute a plan file (no LLM) and show what ran in parallel",
                              description="Execute a written plan with tools from a module; print every "
                                          "observation (or failure) and a timeline.")
    run.add_argument("plan_file", metavar="PLAN_FILE", help="the plan text ('-' reads standard input)")
    _tool_options(run)
    _output_options(run)
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
    ask.add_argument("--joiner-model", metavar="NAME",
                     help="a second model for the joiner, on the same server (default: --model)")
    _output_options(ask)
    ask.set_defaults(handler=_ask_command)

    demo = commands.add_parser("demo", help="the whole loop offline, with example tools and a scripted model",
                               description="Run the LLMCompiler loop on example tools with a scripted "
                                           "planner and joiner: no network, no API key.")
    demo.add_argument("--delay", type=_seconds, default=0.02, metavar="SECONDS",
                      help="pause before each chunk the scripted model streams (default 0.02)")
    demo.add_argument("--trace", metavar="FILE", help="also write a Chrome trace (JSON) of the run")
    _output_options(demo)
    demo.set_defaults(handler=_demo_command)
    _add_tools_command(commands)
    return parser


def _tool_options(command: argparse.ArgumentParser) -> None:
    _tool_source_options(command)
    command.add_argument("--max-workers", type=_positive_int, metavar="N",
                         help="thread pool size (default 32)")
    command.add_argument("--lenient", action="store_true", help="accept sloppy plan lines and arguments")
    command.add_argument("--trace", metavar="FILE", help="also write a Chrome trace (JSON) of the run")


def _output_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--timeline", metavar="FILE", help="also write an SVG timeline of the run")
    command.add_argument("--timeline-rows", choices=("task", "worker"), default="task",
                         help="the timeline's rows: one per task (default) or one per worker")
    command.add_argument("-q", "--quiet", action="store_true",
                         help="no live progress line (it is shown only when stderr is a terminal)")
    command.add_argument("-v", "--verbose", action="count", default=0,
                         help="log to stderr: -v at INFO, -vv at DEBUG (each task event); no progress line")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or argparse's own one-line error (exit 2)
        return stop.code if isinstance(stop.code, int) else 2
    try:
        args.verbose = getattr(args, "verbose", 0) + args.verbose_before
        with _logging(args.verbose):
            for option in ("trace", "timeline"):
                if getattr(args, option, None):
                    _check_writable(getattr(args, option), option)
            return args.handler(args)
    except _InputError as error:
        return _fail(error, 2)
    except LLMCompilerError as error:  # a model call failed (LLMError), or the engine did
        return _fail(error, 1)
    except KeyboardInterrupt:  # RunInterrupted too: what it observed was printed on the way out
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1


@contextlib.contextmanager
def _logging(verbosity: int) -> Iterator[None]:
    """Send the package's log records to stderr while a command runs: INFO for ``-v``, DEBUG for
    ``-vv``; nothing without. The handler is removed afterwards, so ``main`` can be called again."""
    if verbosity <= 0:
        yield
        return
    logger = logging.getLogger("llmcompiler")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = logging.INFO if verbosity == 1 else logging.DEBUG
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)


def _silence_stdout() -> None:
    """The reader of our output went away (as with `| head`): send the rest to devnull, so Python
    does not complain again when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (a captured stdout): nothing to silence
        pass


def _fail(error: BaseException, code: int) -> int:
    print(f"{PROG}: error: {shorten(error, 1000)}", file=sys.stderr)
    return code


# -- inputs ------------------------------------------------------------------------------------------


_PICTURES = {"trace": "trace file", "timeline": "timeline file"}


def _check_writable(path: str, option: str = "trace") -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise _InputError(f"cannot write {_PICTURES[option]} {path!r}: no directory {folder!r}")


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


def _write_pictures(args: argparse.Namespace, source: Any, phases: Sequence[tuple] = ()) -> bool:
    """Write the ``--trace`` and ``--timeline`` files asked for; False when one could not be written."""
    written = True
    for option, opens in (("trace", "https://ui.perfetto.dev or chrome://tracing"),
                          ("timeline", "a web browser")):
        path = getattr(args, option, None)
        if not path:
            continue
        try:
            if option == "timeline":
                svg.write_svg_timeline(source, path, phases, by_worker=args.timeline_rows == "worker")
            else:
                trace.write_chrome_trace(source, path, phases=phases)
        except OSError as error:
            print(f"{PROG}: error: cannot write {_PICTURES[option]} {path!r}: {error.strerror or error}",
                  file=sys.stderr)
            written = False
            continue
        print(f"\n{_PICTURES[option].capitalize()} written to {path} (open it in {opens}).")
    return written


def _progress_line(args: argparse.Namespace, total: int = 0) -> Optional[ProgressLine]:
    """The live progress line, when stderr is a terminal and neither ``--quiet`` nor ``-v`` (log lines
    would tear it) is given."""
    stream = sys.stderr
    isatty = getattr(stream, "isatty", None)
    if args.quiet or args.verbose or not callable(isatty) or not isatty():
        return None
    return ProgressLine(stream, total)


def _event_sink(line: Optional[ProgressLine]) -> Callable[[Event], None]:
    """The ``on_event`` callback: the progress line, and a DEBUG log record per event."""
    def on_event(event: Event) -> None:
        if line is not None:
            line.event(event)
        if _log.isEnabledFor(logging.DEBUG):
            where = f" on {event.worker}" if event.worker else ""
            _log.debug("task %d (%s) %s%s", event.task, event.tool, event.kind, where)

    return on_event


# -- commands ----------------------------------------------------------------------------------------


def _run_command(args: argparse.Namespace) -> int:
    text = _read_plan(args.plan_file)
    registry = _load_registry(args)
    name = "<stdin>" if args.plan_file == "-" else args.plan_file
    try:
        tasks = parse_plan(text, lenient=args.lenient)
        for task in tasks:
            registry.check(task)
    except (LLMCompilerError, ValueError, RecursionError) as error:  # the plan cannot be read or run
        raise _InputError(f"{name}: {shorten(error, 1000)}") from None
    line = _progress_line(args, len(tasks))
    _log.info("running %d tasks from %s", len(tasks), name)
    try:
        with Engine(registry, max_workers=args.max_workers) as engine:
            result = engine.run(tasks, on_event=_event_sink(line))
    except (LLMCompilerError, KeyboardInterrupt) as error:  # RunInterrupted carries what was observed
        _show_partial(error, line, args)
        raise
    if line is not None:
        line.finish()
    _log.info("ran %d tasks: %d failed or skipped, %.3f s", len(result.tasks), len(result.failures),
              result.elapsed)
    print_run(result, sys.stdout)
    written = _write_pictures(args, result)
    return 0 if result.ok and written else 1


def _show_partial(error: BaseException, line: Optional[ProgressLine], args: argparse.Namespace,
                  printer: Optional[RoundPrinter] = None) -> None:
    """Before an error (or an interrupt) is reported: print what ran, from the ``result`` it carries
    (a ``RunResult`` or a partial ``CompilerResult``), and write the pictures asked for."""
    if line is not None:
        line.finish()
    partial = getattr(error, "result", None)
    if isinstance(partial, RunResult):
        print_run(partial, sys.stdout)
        _write_pictures(args, partial)
    elif isinstance(partial, CompilerResult):
        if printer is not None:
            printer.rest(partial.rounds)
        report(partial, sys.stdout, final=False)
        _write_pictures(args, partial, partial.phases())
    sys.stdout.flush()


def _ask_command(args: argparse.Namespace) -> int:
    registry = _load_registry(args)
    variable = args.api_key_env or "OPENAI_API_KEY"
    api_key = os.environ.get(variable) or None
    if args.api_key_env and api_key is None:
        raise _InputError(f"the environment variable {args.api_key_env} (--api-key-env) is not set")
    try:
        llm = OpenAIChat(args.model, base_url=args.base_url, api_key=api_key, timeout=args.timeout)
        joiner = None if args.joiner_model is None else OpenAIChat(
            args.joiner_model, base_url=args.base_url, api_key=api_key, timeout=args.timeout)
    except ValueError as error:
        raise _InputError(str(error)) from None
    print(f"Question: {args.question}")
    print(f"Model: {llm.model} at {llm.base_url}")
    options = {} if joiner is None else {"joiner_llm": joiner}
    if joiner is not None:
        print(f"Joiner model: {joiner.model}")
    return _answer(LLMCompiler(llm, registry, max_replans=args.max_replans, max_workers=args.max_workers,
                               lenient=args.lenient, **options), args.question, args)


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
    return _answer(LLMCompiler(demo_llm(args.delay), registry), DEMO_QUESTION, args)


def _answer(compiler: LLMCompiler, question: str, args: argparse.Namespace) -> int:
    """Run the loop with live progress, then print the report; the exit code. An error or an interrupt
    that carries a partial result has it printed first."""
    line = _progress_line(args)
    printer = RoundPrinter(sys.stdout, time.perf_counter(), line)
    try:
        with compiler:
            result = compiler.run(question, on_event=_event_sink(line), on_task=printer.task,
                                  on_round=printer.round)
    except (LLMCompilerError, KeyboardInterrupt) as error:
        _show_partial(error, line, args, printer)
        raise
    if line is not None:
        line.finish()
    report(result, sys.stdout)
    written = _write_pictures(args, result, result.phases())
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
