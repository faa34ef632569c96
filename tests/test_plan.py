"""Tests for llmcompiler.plan: the plan language, streaming, validation, Task dicts and resolve()."""

from __future__ import annotations

import builtins
import copy
import pickle
import random
import sys
import tracemalloc
from dataclasses import FrozenInstanceError

import pytest

import plan_fuzz
from llmcompiler import _literals as literals_module
from llmcompiler import parser as parser_module
from llmcompiler.errors import (
    CycleError,
    DuplicateTaskError,
    PlanError,
    PlanSyntaxError,
    RenderError,
    SubstitutionError,
    UnknownReferenceError,
)
from llmcompiler.plan import (
    END_OF_PLAN,
    PlanParser,
    Task,
    call_text,
    parse_plan,
    resolve,
    validate_tasks,
)

EXAMPLE = """Thought: I need both populations before I can compare them.
1. search("population of Tokyo")
2. search(query="population of Paris")
Thought: Now compute the ratio.
3. math("ratio of $1 to ${2}", context=[$1, $2])
4. join()<END_OF_PLAN>
"""


def shape(tasks):
    """Everything a task carries, thought included (Task equality ignores the thought)."""
    return [(t.idx, t.tool, t.args, t.kwargs, sorted(t.dependencies), t.thought) for t in tasks]


def one(text, **options):
    tasks = parse_plan(text, **options)
    assert len(tasks) == 1, tasks
    return tasks[0]


# -- grammar ----------------------------------------------------------------------------------------


def test_example_plan():
    assert shape(parse_plan(EXAMPLE)) == [
        (1, "search", ("population of Tokyo",), {}, [], "I need both populations before I can compare them."),
        (2, "search", (), {"query": "population of Paris"}, [], None),
        (3, "math", ("ratio of $1 to ${2}",), {"context": ["$1", "$2"]}, [1, 2], "Now compute the ratio."),
    ]


def test_positional_and_keyword_arguments():
    task = one('1. tool("a", 2, key="v", other=[1, 2])')
    assert task.args == ("a", 2)
    assert task.kwargs == {"key": "v", "other": [1, 2]}


def test_every_literal_type():
    task = one(
        '1. t("s", \'q\', 7, 2.5, True, False, None, [1, [2]], (1,), (), {"k": 1, 2: "two", None: 0, '
        '-1.5: "neg", True: 1}, -3, -0.25, +4, 1e3, "con" "cat", r"\\d", "\\u00e9", """tri""", x=-1)'
    )
    assert task.args == (
        "s", "q", 7, 2.5, True, False, None, [1, [2]], (1,), (),
        {"k": 1, 2: "two", None: 0, -1.5: "neg", True: 1}, -3, -0.25, 4, 1000.0, "concat", "\\d", "\u00e9", "tri",
    )
    assert task.kwargs == {"x": -1}
    assert type(task.args[4]) is bool and type(task.args[3]) is float and type(task.args[8]) is tuple


def test_no_space_after_dot_leading_whitespace_and_crlf():
    tasks = parse_plan("  1.search('a')\r\n\t2.   search ('b')\r\n")
    assert [(t.idx, t.tool, t.args) for t in tasks] == [(1, "search", ("a",)), (2, "search", ("b",))]


def test_indices_need_not_be_consecutive():
    tasks = parse_plan("5. a()\n2. b($5)\n40. c($2)\n")
    assert [t.idx for t in tasks] == [5, 2, 40]
    assert tasks[2].dependencies == {2}


def test_nested_bare_references_at_any_depth():
    tasks = parse_plan('1. a()\n2. b()\n3. c(context=[$1, {"a": ${2}, "b": ($1, [$2])}], key={$1: 0})\n')
    task = tasks[2]
    assert task.kwargs == {"context": ["$1", {"a": "$2", "b": ("$1", ["$2"])}], "key": {"$1": 0}}
    assert task.dependencies == {1, 2}


def test_quoted_whole_reference_is_a_dependency():
    tasks = parse_plan('1. a()\n2. b("$1", "${1}")\n')
    assert tasks[1].dependencies == {1}


def test_in_text_reference_to_no_earlier_task_is_text():
    tasks = parse_plan('1. a()\n2. b("it costs $5, see $1")\n')
    assert tasks[1].args == ("it costs $5, see $1",)
    assert tasks[1].dependencies == {1}


def test_money_is_not_a_reference():
    tasks = parse_plan('1. a()\n2. b("price $1.50")\n')
    assert tasks[1].dependencies == frozenset()


def test_in_text_reference_to_a_later_task_is_text():
    tasks = parse_plan('1. b("see $2 and ${1}")\n2. a()\n')
    assert tasks[0].dependencies == frozenset()


def test_thoughts_join_and_attach_to_the_next_task_only():
    tasks = parse_plan("Thought: first\n thought:   second \n1. a()\n2. b()\nThought: dangling\njoin()\n")
    assert [t.thought for t in tasks] == ["first second", None]


def test_blank_lines_and_code_fences_are_ignored():
    tasks = parse_plan("```python\n\n1. a()\n   \n```\n")
    assert [t.idx for t in tasks] == [1]


@pytest.mark.parametrize("join_line", ["join()", "4. join()", "  4.join( )  ", "4. join()<END_OF_PLAN>"])
def test_join_ends_the_plan_and_is_no_task(join_line):
    parser = PlanParser()
    tasks = parser.feed(f"1. a()\n{join_line}\n5. b()\nnot even a plan line\n") + parser.close()
    assert [t.idx for t in tasks] == [1]
    assert parser.done


def test_end_of_plan_on_a_task_line_ends_the_plan():
    tasks = parse_plan("1. a()\n2. b()<END_OF_PLAN> garbage\n3. c()\n")
    assert [t.idx for t in tasks] == [1, 2]


def test_end_of_plan_inside_a_string_cuts_the_plan():
    with pytest.raises(PlanSyntaxError, match="line 1: task 1: a string is not closed"):
        parse_plan('1. a("x<END_OF_PLAN>")\n')


def test_text_after_end_is_ignored_and_feed_returns_nothing():
    parser = PlanParser()
    assert parser.feed("1. a()\n" + END_OF_PLAN) and parser.done
    assert parser.feed("2. b()\n") == []
    assert parser.feed("@@@ garbage (((\n") == []
    assert parser.close() == []
    assert [t.idx for t in parser.tasks] == [1]


def test_done_becomes_true_as_soon_as_the_marker_is_complete():
    parser = PlanParser()
    for char in "1. a()":
        parser.feed(char)
    for char in END_OF_PLAN[:-1]:
        assert parser.feed(char) == [] and not parser.done
    assert [t.idx for t in parser.feed(">")] == [1]
    assert parser.done


def test_incomplete_marker_prefix_is_plain_text():
    with pytest.raises(PlanSyntaxError, match="got '<END_OF_PLA'"):
        parse_plan("1. a()\n<END_OF_PLA")


@pytest.mark.parametrize("line", ["Search the web", "1) search('x')", "search('x')", "1. search", "- 1. a()"])
def test_garbage_line_is_an_error_in_strict_mode(line):
    with pytest.raises(PlanSyntaxError) as info:
        parse_plan(f"1. a()\n{line}\n")
    assert info.value.line == 2
    assert str(info.value).startswith(f"line 2: expected '<n>. tool(args)', got {line.strip()!r}")
    assert info.value.text == line


def test_garbage_lines_become_thought_in_lenient_mode():
    tasks = parse_plan("I will search.\nThought: then\n1) first do this\n1. a()\n", lenient=True)
    assert shape(tasks) == [(1, "a", (), {}, [], "I will search. then 1) first do this")]


@pytest.mark.parametrize("lenient", [False, True])
def test_dotted_tool_names_are_refused(lenient):
    with pytest.raises(PlanSyntaxError, match=r"line 1: tool names must be plain identifiers, got 'web\.search'"):
        parse_plan('1. web.search("x")\n', lenient=lenient)


def test_join_with_arguments_is_an_error():
    with pytest.raises(PlanSyntaxError, match=r"line 2: expected 'join\(\)' alone"):
        parse_plan("1. a()\n2. join($1)\n")


@pytest.mark.parametrize("index", ["0", "00"])
def test_index_zero_is_an_error(index):
    with pytest.raises(PlanSyntaxError, match="line 1: task indices start at 1, got 0"):
        parse_plan(f"{index}. a()\n")


def test_huge_index_and_huge_reference_are_syntax_errors():
    with pytest.raises(PlanSyntaxError, match="too large"):
        parse_plan("9" * 5000 + ". a()\n")
    with pytest.raises(PlanSyntaxError, match="too large"):
        parse_plan('1. a("$' + "9" * 5000 + '")\n')


# -- multi-line arguments ---------------------------------------------------------------------------


def test_arguments_may_span_lines_while_brackets_are_open():
    text = '1. a()\nThought: t\n2. b(\n    "x",\n    items=[$1,\n           2],\n)\n3. c()\n'
    tasks = parse_plan(text)
    assert shape(tasks)[1] == (2, "b", ("x",), {"items": ["$1", 2]}, [1], "t")
    assert tasks[2].idx == 3


def test_triple_quoted_string_spans_lines_verbatim():
    task = one('1. write("""first\n2. not a task\nThought: not a thought\n""", n=1)\n')
    assert task.args == ("first\n2. not a task\nThought: not a thought\n",)


def test_multi_line_task_completes_with_its_closing_line():
    parser = PlanParser()
    assert parser.feed("1. a(\n[1,\n") == []
    assert parser.feed("2])") == []
    assert [t.args for t in parser.feed("\n")] == [([1, 2],)]


def test_backslash_newline_continues_a_one_quote_string():
    assert one('1. a("ab\\\ncd")\n').args == ("abcd",)


def test_one_quote_string_cannot_span_lines():
    with pytest.raises(PlanSyntaxError, match="line 1: task 1: a string is not closed at the end of the line"):
        parse_plan('1. a("abc\n2. b()\n')


def test_unclosed_call_is_reported_at_the_next_plan_line_which_is_then_read():
    parser = PlanParser()
    with pytest.raises(PlanSyntaxError) as info:
        parser.feed('1. a("x",\n  [1,\n2. b()\n3. c($2)\n')
    assert str(info.value) == "line 1: task 1: the call is not closed (expected ']') before line 3"
    assert (info.value.line, info.value.task) == (1, 1)
    assert [(t.idx, t.dependencies) for t in parser.close()] == [(2, frozenset()), (3, {2})]


def test_unclosed_call_at_the_end_of_the_plan():
    with pytest.raises(PlanSyntaxError, match=r"line 2: task 2: the call is not closed \(expected '\)'\) before "
                                              r"the end of the plan"):
        parse_plan("1. a()\n2. b(1,\n  2")


def test_unclosed_triple_string_at_the_end():
    with pytest.raises(PlanSyntaxError, match=r"task 1: the call is not closed \(a string is still open\)"):
        parse_plan('1. a("""abc\n2. b()\n')


def test_text_after_the_call_is_an_error():
    with pytest.raises(PlanSyntaxError, match=r"line 1: task 1: unexpected text after the call: 'and more'"):
        parse_plan('1. a("x") and more\n')


def test_mismatched_bracket():
    with pytest.raises(PlanSyntaxError, match=r"line 1: task 1: '\]' does not close '\('"):
        parse_plan('1. a("x"]\n')


def test_nesting_limit():
    assert one("1. a(" + "[" * 90 + "]" * 90 + ")\n").args[0] is not None
    with pytest.raises(PlanSyntaxError, match="nest deeper than 100"):
        parse_plan("1. a(" + "[" * 150 + "]" * 150 + ")\n")


# -- non-literal arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments, found",
    [
        ("x", "a name 'x'"),
        ("q=x", "a name 'x'"),
        ('__import__("os").system("echo hi")', "a call"),
        ("open('f')", "a call"),
        ("'a'.upper", "an attribute"),
        ("[1][0]", "a subscript"),
        ('f"{1}"', "an f-string"),
        ("lambda: 1", "a lambda"),
        ("1 + 2", "an operator"),
        ("--1", "an operator"),
        ("-True", "an operator"),
        ("not 1", "an operator"),
        ("1 < 2", "a comparison"),
        ("[i for i in ()]", "a comprehension"),
        ("(i for i in ())", "a generator expression"),
        ("*[1]", "a starred argument"),
        ("**{'a': 1}", "'**' unpacking"),
        ("{**{'a': 1}}", "'**' unpacking"),
        ("{1, 2}", "a set"),
        ("b'x'", "a bytes literal"),
        ("1j", "a complex number"),
        ("...", "Ellipsis"),
        ("{[1]: 2}", "a container as a dict key"),
        ("1 if 1 else 2", "a conditional expression"),
        ("(y := 1)", "an assignment"),
    ],
)
def test_non_literal_arguments_are_refused(arguments, found):
    with pytest.raises(PlanSyntaxError) as info:
        parse_plan(f"1. a()\n\n3. t({arguments})\n")
    assert str(info.value).startswith(f"line 3: task 3: arguments must be literals, found {found}")
    assert (info.value.line, info.value.task) == (3, 3)


def test_non_literal_on_a_continuation_line_names_that_line():
    with pytest.raises(PlanSyntaxError, match="^line 3: task 1: arguments must be literals, found a name 'oops'"):
        parse_plan("1. a(\n  1,\n  oops,\n)\n")


@pytest.mark.parametrize(
    "arguments, message",
    [
        ("q=1, q=2", "keyword argument 'q' is given twice"),
        ("q=1, 2", "the arguments are not valid: positional argument follows keyword argument"),
        ("1 2", "the arguments are not valid"),
        ("$", "'$' outside a string must be followed by a task number"),
        ("1, # note", "comments ('#') are not allowed"),
    ],
)
def test_argument_syntax_errors(arguments, message):
    with pytest.raises(PlanSyntaxError) as info:
        parse_plan(f"1. t({arguments})\n")
    assert str(info.value).startswith(f"line 1: task 1: {message}")


def test_nothing_is_evaluated(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the parser evaluated plan text")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert one('1. t("a", [1, {"b": -2}])\n').args == ("a", [1, {"b": -2}])
    with pytest.raises(PlanSyntaxError, match="found a call"):
        parse_plan('1. t(__import__("os").system("exit 1"))\n')


def test_invalid_escape_is_accepted_without_warnings(recwarn):
    assert one('1. t("\\d+")\n').args == ("\\d+",)
    assert not [w for w in recwarn if issubclass(w.category, (SyntaxWarning, DeprecationWarning))]


# -- lenient arguments ------------------------------------------------------------------------------


def test_lenient_bare_text_becomes_one_string():
    assert one("1. search(Austin Powers International Man of Mystery)\n", lenient=True).args == (
        "Austin Powers International Man of Mystery",
    )
    with pytest.raises(PlanSyntaxError, match="line 1: task 1: the arguments are not valid"):
        parse_plan("1. search(Austin Powers International Man of Mystery)\n")


def test_lenient_text_with_quotes_brackets_and_references():
    tasks = parse_plan("1. a()\n2. search( Tom's diner (1987) )\n3. search(population of $1)\n", lenient=True)
    assert tasks[1].args == ("Tom's diner (1987)",)
    assert (tasks[2].args, tasks[2].dependencies) == (("population of $1",), {1})


def test_lenient_keeps_literal_arguments_and_still_checks_references():
    assert one('1. search("x", n=-1)\n', lenient=True).kwargs == {"n": -1}
    with pytest.raises(UnknownReferenceError):
        parse_plan("1. search($3)\n", lenient=True)


def test_lenient_multi_line_non_literals_become_their_text():
    assert one("1. a(x,\n  y)\n", lenient=True).args == ("x,\n  y",)


# -- references and indices in text plans -----------------------------------------------------------


def test_duplicate_index():
    with pytest.raises(DuplicateTaskError, match=r"^line 3: task 1 is defined twice \(first on line 1\)$") as info:
        parse_plan("1. a()\n2. b()\n1. c()\n")
    assert (info.value.line, info.value.task) == (3, 1)


@pytest.mark.parametrize(
    "text, reference, suffix",
    [
        ("1. a()\n2. b($7)\n", 7, ""),
        ("1. a($2)\n2. b()\n", 2, ""),
        ("1. a()\n2. b(x=[{'k': ${2}}])\n", 2, " (a task cannot refer to itself)"),
    ],
)
def test_whole_reference_must_name_an_earlier_task(text, reference, suffix):
    with pytest.raises(UnknownReferenceError) as info:
        parse_plan(text)
    task = 2 if text.startswith("1. a()") else 1
    assert str(info.value) == f"line {task}: task {task} refers to ${reference}, which is not an earlier task{suffix}"
    assert (info.value.line, info.value.task, info.value.reference) == (task, task, reference)


def test_known_tasks_of_earlier_plans():
    tasks = parse_plan('5. a($3, "after ${4}")\n', known=[3, 4])
    assert tasks[0].dependencies == {3, 4}
    with pytest.raises(DuplicateTaskError, match="line 1: task 3 is already defined by an earlier plan"):
        parse_plan("3. a()\n", known=[3, 4])
    with pytest.raises(UnknownReferenceError):
        parse_plan("5. a($3)\n")


# -- errors while streaming -------------------------------------------------------------------------


def test_feed_error_keeps_tasks_and_the_parser_goes_on():
    parser = PlanParser()
    assert [t.idx for t in parser.feed("1. a()\n")] == [1]
    with pytest.raises(PlanSyntaxError, match="line 3"):
        parser.feed("2. b()\nbad line\n3. c($2)\n")
    assert [t.idx for t in parser.tasks] == [1, 2]
    assert [t.idx for t in parser.feed("4. d()")] == [2, 3]
    assert [t.idx for t in parser.close()] == [4]
    assert [t.idx for t in parser.tasks] == [1, 2, 3, 4]


def test_tasks_property_is_a_copy():
    parser = PlanParser()
    parser.feed("1. a()\n")
    parser.tasks.clear()
    assert len(parser.tasks) == 1


def test_close_is_idempotent_and_feed_after_close_fails():
    parser = PlanParser()
    parser.feed("1. a()")
    assert [t.idx for t in parser.close()] == [1]
    assert parser.close() == []
    assert not parser.done
    with pytest.raises(PlanError, match="after close"):
        parser.feed("2. b()\n")


# -- streaming: every way of cutting the text gives the same tasks ----------------------------------

STREAM_PLANS = [
    (EXAMPLE, {}),
    ('Thought: a\r\n1. a("x")\r\n```\n2. b(\n  [$1, """multi\n<END_OF_\nline""",\n  {"k": ${1}}],\n)\n'
     "3. c('$2 and $9 and $1.50', n=-2.5)\njoin()\n4. d()\n", {}),
    ("1. a()\n2. b()<END_OF_PLAN>\n3. c()", {}),
    ("1. a()\n<END_OF_PLA\n2. b()", {"lenient": True}),
    ("some prose\n1. search(Austin Powers)\n2. search(Tom's $1 (x))\nmore prose\n3. f(\"y\")", {"lenient": True}),
    ("5. a($3)\n6. b(\"$5 $4\")\n", {"known": [3, 4]}),
    ("1. a()", {}),
    ("", {}),
]

BAD_STREAM_PLANS = [
    "1. a()\n2. b(\n  [1,\n3. c()\n",
    "1. a()\nnonsense\n2. b()\n",
    '1. a()\n2. b("x<END_OF_PLAN>")\n',
    "1. a(x)\n",
    "1. a()\n1. b()\n",
]


def stream(text, cuts, **options):
    parser = PlanParser(**options)
    tasks, start = [], 0
    for cut in list(cuts) + [len(text)]:
        tasks += parser.feed(text[start:cut])
        start = cut
    return tasks + parser.close()


def outcome(run):
    """What a parse gave: its tasks, or the error's type, message and line."""
    try:
        return "ok", shape(run())
    except PlanError as error:
        return type(error).__name__, str(error), error.line


@pytest.mark.parametrize("text, options", STREAM_PLANS)
def test_every_single_cut_point(text, options):
    expected = shape(parse_plan(text, **options))
    for cut in range(len(text) + 1):
        assert shape(stream(text, [cut], **options)) == expected, cut


@pytest.mark.parametrize("text, options", STREAM_PLANS)
def test_random_multi_cuts_and_one_character_feeding(text, options):
    expected = shape(parse_plan(text, **options))
    assert shape(stream(text, range(1, len(text)), **options)) == expected
    rng = random.Random(1234)
    for _ in range(50):
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(1, 8))))
        assert shape(stream(text, cuts, **options)) == expected, cuts


@pytest.mark.parametrize("text", BAD_STREAM_PLANS)
def test_every_cut_point_gives_the_same_error(text):
    expected = outcome(lambda: parse_plan(text))
    assert expected[0] != "ok"
    for cut in range(len(text) + 1):
        assert outcome(lambda: stream(text, [cut])) == expected, cut


def test_stream_plan_expectations():
    """The stream plans above really exercise what they claim (guards against vacuous equality)."""
    tasks = parse_plan(STREAM_PLANS[1][0])
    assert shape(tasks) == [
        (1, "a", ("x",), {}, [], "a"),
        (2, "b", (["$1", "multi\n<END_OF_\nline", {"k": "$1"}],), {}, [1], None),
        (3, "c", ("$2 and $9 and $1.50",), {"n": -2.5}, [2], None),
    ]
    assert [t.args for t in parse_plan(STREAM_PLANS[4][0], lenient=True)] == [
        ("Austin Powers",), ("Tom's $1 (x)",), ("y",)]


class WorkCounter:
    """Counts the characters the parser handles: taken in, queued as lines, scanned as arguments.

    Feeding is linear when each count stays within a small multiple of the text's length, however the
    text is cut; a parser that re-reads what it holds on every chunk makes them grow quadratically."""

    def __init__(self, monkeypatch):
        self.counts = {"taken": 0, "lines": 0, "scanned": 0}
        original_take = parser_module.PlanParser._take
        original_queue = parser_module.PlanParser._queue_line
        original_feed = literals_module.ArgumentScanner.feed
        original_simple = parser_module.read_simple_call

        def take(parser, chunk):
            self.counts["taken"] += len(parser._held) + len(chunk)
            return original_take(parser, chunk)

        def queue(parser, line):
            self.counts["lines"] += len(line)
            return original_queue(parser, line)

        def scan(scanner, segment):
            self.counts["scanned"] += len(segment)
            return original_feed(scanner, segment)

        def simple(line, pos):
            self.counts["scanned"] += len(line) - pos
            return original_simple(line, pos)

        monkeypatch.setattr(parser_module.PlanParser, "_take", take)
        monkeypatch.setattr(parser_module.PlanParser, "_queue_line", queue)
        monkeypatch.setattr(literals_module.ArgumentScanner, "feed", scan)
        monkeypatch.setattr(parser_module, "read_simple_call", simple)


def test_large_plan_fed_one_character_at_a_time_is_linear(monkeypatch):
    lines = ['1. search("start")'] + [f'{i}. search("q{i}", prev=${i - 1})' for i in range(2, 10001)]
    lines[5000] = '5001. search(\n  "multi-line", prev=[$5000,\n  ])'
    text = "\n".join(lines) + "\njoin()\n"
    counter = WorkCounter(monkeypatch)
    parser = PlanParser()
    tasks = []
    for char in text:
        tasks += parser.feed(char)
    tasks += parser.close()
    assert len(tasks) == 10000 and tasks[-1].dependencies == {9999} and tasks[5000].dependencies == {5000}
    counts = dict(counter.counts)
    assert tasks == parse_plan(text)
    assert counts["taken"] <= 2 * len(text) and counts["lines"] <= len(text), counts
    assert len(text) // 2 < counts["scanned"] <= 3 * len(text), counts


def test_long_single_line_fed_one_character_at_a_time(monkeypatch):
    text = '1. a("' + "x" * 100000 + '")\n'
    counter = WorkCounter(monkeypatch)
    parser = PlanParser()
    tasks = [t for char in text for t in parser.feed(char)]
    assert len(tasks[0].args[0]) == 100000
    assert counter.counts["taken"] <= 2 * len(text) and counter.counts["lines"] == len(text) - 1
    assert counter.counts["scanned"] <= 2 * len(text), counter.counts


# -- validate_tasks ---------------------------------------------------------------------------------


def seed(idx, deps=(), **args):
    return {"idx": idx, "tool_name": "sleep_next", "args": args or {"t": 1}, "dependencies": list(deps)}


def test_validate_accepts_dicts_and_tasks_in_order_with_forward_references():
    tasks = validate_tasks([seed(1, [41]), Task(41, "search", ("x",)), seed(2, [1, 41])])
    assert [t.idx for t in tasks] == [1, 41, 2]
    assert tasks[0].dependencies == {41}


def test_validate_duplicate():
    with pytest.raises(DuplicateTaskError, match="^task 2 is defined twice$") as info:
        validate_tasks([seed(1), seed(2), seed(2)])
    assert info.value.task == 2


def test_validate_unknown_dependency_and_whole_reference():
    with pytest.raises(UnknownReferenceError, match="^task 2 depends on task 9, which is neither in the plan nor an earlier task$") as info:
        validate_tasks([seed(1), seed(2, [9])])
    assert (info.value.task, info.value.reference) == (2, 9)
    with pytest.raises(UnknownReferenceError, match="task 1 depends on task 5"):
        validate_tasks([seed(1, q="$5")])


def test_validate_self_dependency():
    with pytest.raises(UnknownReferenceError, match="task 3 depends on itself"):
        validate_tasks([seed(3, [3])])


@pytest.mark.parametrize(
    "items, cycle",
    [
        ([seed(1, [2]), seed(2, [1])], [1, 2, 1]),
        ([seed(7), seed(1, [3]), seed(2, [1]), seed(3, [2, 7])], [1, 3, 2, 1]),
        ([seed(1), seed(2, [1, 4]), seed(3, [2]), seed(4, [3])], [2, 4, 3, 2]),
    ],
)
def test_validate_cycle(items, cycle):
    with pytest.raises(CycleError) as info:
        validate_tasks(items)
    assert info.value.cycle == cycle
    assert str(info.value) == f"tasks {' -> '.join(map(str, cycle))} form a cycle"


def test_validate_known_tasks():
    assert [t.idx for t in validate_tasks([seed(5, [3])], known=[3])] == [5]
    with pytest.raises(DuplicateTaskError, match="earlier plan"):
        validate_tasks([seed(3)], known=[3])


def test_validate_rejects_other_items():
    with pytest.raises(PlanError, match="item 2 of the task list must be a Task or a dict, got str"):
        validate_tasks([seed(1), "2. a()"])


def test_validate_long_chains_and_a_long_cycle_without_recursion():
    count = 10000
    backward = [seed(i, [i - 1] if i > 1 else []) for i in range(1, count + 1)]
    forward = [seed(i, [i + 1] if i < count else []) for i in range(1, count + 1)]
    assert len(validate_tasks(backward)) == count
    assert len(validate_tasks(forward)) == count
    looped = [seed(i, [i % count + 1]) for i in range(1, count + 1)]
    with pytest.raises(CycleError) as info:
        validate_tasks(looped)
    assert info.value.cycle[0] == info.value.cycle[-1] and len(info.value.cycle) == count + 1


# -- Task dicts and resolve() -----------------------------------------------------------------------


def test_seed_dict_round_trip():
    data = {"idx": 1, "tool_name": "sleep_next", "args": {"t": 1}, "dependencies": []}
    task = Task.from_dict(data)
    assert (task.idx, task.tool, task.args, task.kwargs, task.dependencies) == (1, "sleep_next", (), {"t": 1}, set())
    assert task.to_dict() == data
    assert Task.from_dict(task.to_dict()) == task


def test_parsed_task_round_trips_through_its_dict():
    task = parse_plan('1. a()\n2. b("x $1", [$1], k=-1)\n')[1]
    again = Task.from_dict({**task.to_dict(), "args": list(task.args), "kwargs": task.to_dict()["args"]})
    assert again == task and again.dependencies == {1}


def test_resolve_replaces_references_by_observations():
    tasks = parse_plan(
        '1. a()\n2. b()\n3. c($1, "sum of $1 and ${2}", [$2, ("$1",)], m={"$1": $2}, cost="$5 or $1.50")\n'
    )
    observations = {1: [10, 20], 2: 3.5}
    args, kwargs = resolve(tasks[2], observations.__getitem__)
    assert args == ([10, 20], "sum of [10, 20] and 3.5", [3.5, ([10, 20],)])
    assert args[0] is observations[1]
    assert kwargs == {"m": {"$1": 3.5}, "cost": "$5 or $1.50"}


def test_resolve_leaves_non_dependencies_alone():
    task = Task(1, "t", ("see $2",), {"x": "$1 $3"}, frozenset({3}))
    assert resolve(task, {3: "three"}.__getitem__) == (("see $2",), {"x": "$1 three"})


# -- fuzzing (the corpus and the checks are in plan_fuzz.py; make stress runs 100,000 cases) ----------


def test_fuzzed_plans_give_tasks_or_plan_errors_only():
    summary = plan_fuzz.fuzz(6000)
    assert summary.cases == 6000 and summary.stream_checks == 1500
    assert summary.outcomes["tasks"] > 400, summary.outcomes
    assert summary.outcomes["PlanSyntaxError"] > 400, summary.outcomes


# -- resolve() and the values it renders -------------------------------------------------------------


class BadStr:
    def __str__(self):
        raise KeyError("x")

    def __repr__(self):
        raise KeyError("x")


def test_resolve_fills_a_huge_int_in_full():
    huge = 10 ** 5000 + 7
    task = parse_plan('1. a()\n2. g("the result is $1")\n')[1]
    (text,), _ = resolve(task, {1: huge}.__getitem__)
    assert text == "the result is 1" + "0" * 4999 + "7"


def test_resolve_names_the_task_reference_and_argument_when_str_raises():
    task = parse_plan('1. a()\n2. g(q="the result is $1")\n')[1]
    with pytest.raises(SubstitutionError) as info:
        resolve(task, {1: BadStr()}.__getitem__)
    assert str(info.value) == "task 2: cannot fill $1 into argument 'q': str() of a BadStr value raised KeyError: 'x'"
    assert (info.value.task, info.value.reference, info.value.argument) == (2, 1, "argument 'q'")
    assert isinstance(info.value, RenderError) and isinstance(info.value.__cause__, KeyError)


def test_resolve_names_a_positional_argument_inside_a_container():
    task = Task(3, "g", ("fine", ["x", {"k": "see ${1}"}]), dependencies={1})
    with pytest.raises(SubstitutionError, match=r"^task 3: cannot fill \$1 into argument 2: str\(\) of a BadStr"):
        resolve(task, {1: BadStr()}.__getitem__)


def test_resolve_passes_whole_references_unchanged_whatever_they_are():
    bad, huge = BadStr(), 10 ** 5000
    task = parse_plan('1. a()\n2. b()\n3. g($1, [$2], k={"v": $1})\n')[2]
    args, kwargs = resolve(task, {1: bad, 2: huge}.__getitem__)
    assert args[0] is bad and args[1][0] is huge and kwargs["k"]["v"] is bad


def test_resolve_leaves_other_types_alone():
    marker = object()
    task = Task(2, "g", ({1, 2}, marker, "$1"), dependencies={1})
    args, _ = resolve(task, {1: "one"}.__getitem__)
    assert args == ({1, 2}, marker, "one") and args[1] is marker


def test_huge_reference_numbers_in_text_are_text():
    big = "$" + "9" * 30
    task = Task(2, "g", (f"see {big} and $1",), dependencies={1})
    assert resolve(task, {1: "x"}.__getitem__) == ((f"see {big} and x",), {})


def test_call_text_never_raises():
    task = Task(2, "g", (10 ** 5000, BadStr(), "$1"), {"k": "${1}", "s": "x" * 10000})
    text = call_text(task)
    assert text.startswith("g(") and "digits" in text and "unprintable BadStr" in text
    assert ", $1, k=$1, s='" in text and len(text) < 2000


# -- Task: immutable, small, equal by content --------------------------------------------------------


def test_task_fields_cannot_be_set_or_deleted():
    task = Task(1, "t", ("a",))
    with pytest.raises(FrozenInstanceError):
        task.idx = 2
    with pytest.raises(FrozenInstanceError):
        del task.tool
    with pytest.raises(AttributeError):
        task.extra = 1  # no __dict__: slots only
    assert task.idx == 1


def test_task_owns_its_arguments():
    kwargs, args = {"q": "x"}, ["a"]
    task = Task(1, "t", args, kwargs)
    kwargs["q"], args[0] = "changed", "changed"
    assert (task.args, task.kwargs) == (("a",), {"q": "x"})
    data = {"idx": 1, "tool_name": "t", "args": {"q": "x"}}
    from_dict = Task.from_dict(data)
    data["args"]["q"] = "changed"
    assert from_dict.kwargs == {"q": "x"}


def test_task_equality_and_hash_ignore_the_thought():
    first = Task(1, "t", ("a",), {"k": 1}, thought="one")
    assert first == Task(1, "t", ("a",), {"k": 1}, thought="two")
    assert first != Task(1, "t", ("b",), {"k": 1})
    assert hash(first) == hash(Task(1, "t", ("zzz",)))
    assert first != (1, "t", ("a",), {"k": 1}) and len({first, Task(1, "t", ("a",), {"k": 1})}) == 1


def test_task_pickles_and_copies():
    task = parse_plan('1. a()\n2. b($1, "x $1", k=[1.5, None])\n')[1]
    for again in (pickle.loads(pickle.dumps(task)), copy.copy(task), copy.deepcopy(task)):
        assert shape([again]) == shape([task]) and type(again.dependencies) is frozenset


def test_task_field_types():
    task = Task.from_dict({"idx": 1, "tool_name": "t", "args": ["a"], "dependencies": [2, 3]})
    assert type(task.args) is tuple and type(task.kwargs) is dict and type(task.dependencies) is frozenset
    assert task.dependencies == {2, 3} and task.dependency_indices == (2, 3)
    assert Task(1, "t").dependencies is Task(2, "t").dependencies  # one shared empty set
    assert Task(3, "t", ("$2", "$1"), dependencies={2, 2}).dependency_indices == (1, 2)  # sorted, distinct


@pytest.mark.parametrize("idx", [0, -1, True, 1.0, "1", None, 10 ** 18, 10 ** 5000],
                         ids=["0", "-1", "True", "1.0", "str", "None", "10**18", "10**5000"])
def test_task_index_must_be_a_positive_int(idx):
    with pytest.raises(PlanError, match="a task index must be a positive int"):
        Task(idx, "t")


@pytest.mark.parametrize("deps, message", [
    ([1, "2"], "dependencies must be task indices \\(positive ints of at most 18 digits\\), got '2'"),
    ([True], "got True"),
    ([0], "got 0"),
    ([10 ** 5000], "got 100000000000...\\[5,001 digits\\]"),
    ("12", "'dependencies' must be a list of task indices, got str"),
])
def test_task_dependencies_must_be_indices(deps, message):
    with pytest.raises(PlanError, match=message):
        Task.from_dict({"idx": 4, "tool_name": "t", "dependencies": deps})


def test_from_dict_keeps_the_original_forms():
    task = Task.from_dict({"idx": 2, "tool": "t", "args": [1], "kwargs": {"k": "$1"}, "thought": "why"})
    assert (task.tool, task.args, task.kwargs, task.dependencies, task.thought) == ("t", (1,), {"k": "$1"}, {1}, "why")
    merged = Task.from_dict({"idx": 2, "tool_name": "t", "args": {"a": 1, "k": 0}, "kwargs": {"k": 2}})
    assert merged.kwargs == {"a": 1, "k": 2}
    with pytest.raises(PlanError, match="task 2: the tool name must be a non-empty string"):
        Task.from_dict({"idx": 2, "tool_name": ""})
    with pytest.raises(PlanError, match="a task must be a dict, got list"):
        Task.from_dict([1, "t"])


def test_memory_per_task_from_dicts_is_bounded():
    """A task from a dict holds its own slots, one copy of its keyword arguments and its dependency set,
    nothing more (no per-instance __dict__, no second copy): about 480 bytes on 3.11."""
    dicts = [{"idx": i, "tool_name": "t", "args": {"q": "x"}, "dependencies": [i - 1]} for i in range(2, 2002)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tasks = [Task.from_dict(data) for data in dicts]
        held = tracemalloc.get_traced_memory()[0] - before - sys.getsizeof(tasks)
    finally:
        tracemalloc.stop()
    parts = sys.getsizeof(tasks[0]) + sys.getsizeof(tasks[0].kwargs) + sys.getsizeof(tasks[0].dependencies)
    assert not hasattr(tasks[0], "__dict__")
    assert held / len(tasks) <= parts * 1.05, (held / len(tasks), parts)
