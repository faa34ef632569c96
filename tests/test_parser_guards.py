"""Tests for llmcompiler.parser on hostile and broken input, and for its fast path.

Each test states the outcome it expects: a typed ``PlanError`` naming the line and the problem, or
valid tasks. Never a crash (``RecursionError``, ``ValueError`` from int(), ``UnicodeEncodeError``) and
never a value that breaks whoever prints it later.
"""

from __future__ import annotations

import builtins
import random
from collections import Counter

import pytest

from plan_fuzz import literal_only, random_bytes_text

from llmcompiler import parser as parser_module
from llmcompiler._literals import ArgumentScanner, read_arguments, read_simple_call
from llmcompiler.errors import PlanError, PlanSyntaxError
from llmcompiler.parser import PlanParser, parse_plan
from llmcompiler.plan import MAX_NESTING, Task, references
from llmcompiler.text import short_repr


def one(text, **options):
    tasks = parse_plan(text, **options)
    assert len(tasks) == 1, tasks
    return tasks[0]


def syntax_error(text, **options):
    with pytest.raises(PlanSyntaxError) as info:
        parse_plan(text, **options)
    str(info.value)  # the message itself can always be shown
    return info.value


# -- huge numbers: refused in every base, before anything prints them --------------------------------


@pytest.mark.parametrize(
    "literal",
    [
        "0x" + "f" * 5000,
        "0o" + "7" * 5000,
        "0b" + "1" * 15000,
        "9" * 5000,
        "-" + "9" * 5000,
        "0x" + "f" * 100_000,
        "1_" * 4400 + "1",
        "-0x" + "F" * 5000,
    ],
    ids=["hex", "octal", "binary", "decimal", "negative", "hex-100k", "underscores", "negative-hex"],
)
def test_an_int_of_more_than_4300_digits_is_refused_in_any_base(literal):
    error = syntax_error(f"1. a()\n2. b(x={literal})\n")
    assert str(error) == "line 2: task 2: a number has more than 4,300 decimal digits (write a huge value as a string)"
    assert (error.line, error.task) == (2, 2)


def test_an_int_of_4300_digits_in_any_base_is_accepted_and_prints():
    largest = 10 ** 4300 - 1
    for written in (str(largest), hex(largest), oct(largest), bin(largest)):
        task = one(f"1. a({written})\n")
        assert task.args == (largest,)
        assert len(str(task.args[0])) == 4300  # within the interpreter's own str() limit


def test_a_huge_number_as_a_dict_key_is_refused_too():
    error = syntax_error("1. a({0x" + "f" * 5000 + ": 1})\n")
    assert "more than 4,300 decimal digits" in str(error)


@pytest.mark.parametrize("literal", ["1e99999", "-1e99999", "1.5E400", "9" * 400 + ".0e9"])
def test_a_float_that_overflows_is_refused(literal):
    error = syntax_error(f"1. a({literal})\n")
    assert str(error) == "line 1: task 1: a number too large for a float (it overflows to infinity)"


def test_a_float_that_underflows_is_zero():
    assert one("1. a(1e-99999, -1e-400)\n").args == (0.0, -0.0)


def test_a_huge_number_in_lenient_mode_becomes_text():
    assert one("1. a(0x" + "f" * 5000 + ")\n", lenient=True).args == ("0x" + "f" * 5000,)


# -- deep nesting: a PlanError, never a RecursionError -----------------------------------------------

DEEP = 100_000


@pytest.mark.parametrize("opener, closer", [("[", "]"), ("(", ")"), ("{", "}")])
def test_nesting_100k_deep_is_a_plan_error(opener, closer):
    error = syntax_error("1. a(" + opener * DEEP + closer * DEEP + ")\n")
    assert str(error) == f"line 1: task 1: arguments nest deeper than {MAX_NESTING} brackets"


def test_nesting_100k_deep_while_streaming_is_a_plan_error():
    text = "1. a()\n2. b(" + "[" * DEEP + "]" * DEEP + ")\n3. c($1)\n"
    parser = PlanParser()
    tasks, errors = [], []
    for start in range(0, len(text), 997):
        try:
            tasks += parser.feed(text[start:start + 997])
        except PlanError as error:
            errors.append(error)
    tasks += parser.close()
    assert [str(error) for error in errors] == [f"line 2: task 2: arguments nest deeper than {MAX_NESTING} brackets"]
    assert [task.idx for task in tasks] == [1, 3]  # the parser goes on after the bad task


def test_nesting_up_to_the_limit_is_accepted():
    depth = MAX_NESTING - 1  # the call's own '(' is the hundredth bracket
    task = one("1. a(" + "[" * depth + "$1" * 0 + "]" * depth + ")\n")
    value, levels = task.args[0], 1
    while value:
        value, levels = value[0], levels + 1
    assert levels == depth


def nested(depth, leaf="$1"):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("build", [
    lambda value: Task(2, "t", (value,)),
    lambda value: Task(2, "t", kwargs={"q": value}),
    lambda value: Task.from_dict({"idx": 2, "tool_name": "t", "args": {"q": value}}),
    lambda value: Task.from_dict({"idx": 2, "tool_name": "t", "args": [value]}),
], ids=["args", "kwargs", "dict-kwargs", "dict-args"])
def test_tasks_built_from_values_100k_deep_are_a_plan_error(build):
    with pytest.raises(PlanError, match=f"^task 2: arguments nest deeper than {MAX_NESTING} containers$"):
        build(nested(DEEP))


def test_a_value_that_contains_itself_is_a_plan_error():
    loop: list = []
    loop.append(loop)
    with pytest.raises(PlanError, match="nest deeper than"):
        Task(1, "t", (loop,))
    with pytest.raises(PlanError, match="nest deeper than"):
        references((loop,), {})


def test_containers_up_to_the_limit_are_walked_for_references():
    assert Task(2, "t", (nested(MAX_NESTING - 1),)).dependencies == {1}


# -- characters: control characters, NUL, lone surrogates, bytes ------------------------------------


def test_control_characters_inside_strings_are_kept():
    assert one("1. a('\x1b[31mred\x1b[0m', \"\x07\x7f\x85\")\n").args == ("\x1b[31mred\x1b[0m", "\x07\x7f\x85")


def test_a_control_character_outside_a_string_is_a_syntax_error():
    error = syntax_error("1. a(\x1b)\n")
    assert error.line == 1 and error.task == 1


def test_control_characters_around_a_line_are_whitespace_or_an_error():
    assert one("\x1c\x1d1. a()\x0b\n").tool == "a"  # str.isspace() characters, as in Python
    assert syntax_error("\x011. a()\n").line == 1


@pytest.mark.parametrize("text", ["1. a('x\x00y')\n", "1. a(\x00)\n", "1. a(\n'\x00'\n)\n"])
def test_a_nul_character_is_a_syntax_error(text):
    error = syntax_error(text)
    assert "a NUL character cannot appear in a plan" in str(error) and error.task == 1


def test_a_nul_character_in_a_thought_or_garbage_line():
    assert one("Thought: a\x00b\n1. a()\n").thought == "a\x00b"
    assert syntax_error("1. a()\n\x00\n").line == 2


def test_invalid_utf8_decoded_with_surrogateescape_is_a_syntax_error():
    text = b'1. a("caf\xe9")\n'.decode("utf-8", "surrogateescape")
    error = syntax_error(text)
    assert str(error).startswith("line 1: task 1: the text holds '\\udce9', which is not a Unicode character")


def test_a_lone_surrogate_outside_a_string_is_a_syntax_error():
    assert syntax_error("1. a(\ud800)\n").task == 1


def test_invalid_utf8_decoded_with_replace_is_valid_text():
    text = b'1. a("caf\xe9")\n'.decode("utf-8", "replace")
    assert one(text).args == ("caf\ufffd",)


@pytest.mark.parametrize("chunk", [b"1. a()\n", bytearray(b"1. a()\n"), None, 17])
def test_text_that_is_not_str_is_a_plan_error(chunk):
    with pytest.raises(PlanError, match="plan text must be str, got"):
        PlanParser().feed(chunk)


# -- code in arguments: refused, naming what was found -----------------------------------------------


@pytest.mark.parametrize(
    "arguments, found",
    [
        ('f"{__import__(\'os\')}"', "an f-string"),
        ("__import__('os')", "a call"),
        ("print", "a name 'print'"),
        ("().__class__", "an attribute"),
        ("(lambda: 0)()", "a call"),
        ("lambda: 0", "a lambda"),
        ("[x for x in ()]", "a comprehension"),
        ("{x: 1 for x in ()}", "a comprehension"),
        ("*[1]", "a starred argument"),
        ("[*[1]]", "a starred argument"),
        ("(y := 1)", "an assignment"),
        ("q=(y := 1)", "an assignment"),
    ],
)
def test_code_is_refused_naming_what_was_found(arguments, found):
    error = syntax_error(f"1. t({arguments})\n")
    assert str(error).startswith(f"line 1: task 1: arguments must be literals, found {found}")


# -- a stream that stops early -----------------------------------------------------------------------


def test_a_stream_without_join_gives_its_tasks_and_done_stays_false():
    parser = PlanParser()
    tasks = parser.feed('1. a()\n2. b("x")\n') + parser.close()
    assert [task.idx for task in tasks] == [1, 2]
    assert not parser.done


def test_a_stream_cut_after_a_complete_call_without_newline_gives_that_task():
    parser = PlanParser()
    assert [task.idx for task in parser.feed("1. a()\n2. b($1)")] == [1]
    assert [(task.idx, task.dependencies) for task in parser.close()] == [(2, {1})]
    assert not parser.done


@pytest.mark.parametrize("cut, message", [
    ('2. b("Par', "a string is not closed at the end of the line"),
    ("2. b(1, [2", "the call is not closed (expected ']')"),
    ("2. b(", "the call is not closed (expected ')')"),
])
def test_a_stream_cut_mid_call_keeps_earlier_tasks_and_close_names_the_cut_task(cut, message):
    parser = PlanParser()
    assert [task.idx for task in parser.feed("1. a()\n" + cut)] == [1]
    with pytest.raises(PlanSyntaxError) as info:
        parser.close()
    assert str(info.value).startswith(f"line 2: task 2: {message}")
    assert [task.idx for task in parser.tasks] == [1]
    assert parser.close() == [] and not parser.done


def test_a_stream_cut_mid_line_that_is_no_task_is_a_syntax_error_at_close():
    parser = PlanParser()
    parser.feed("1. a()\nThe answ")
    with pytest.raises(PlanSyntaxError, match="^line 2: expected '<n>. tool\\(args\\)', got 'The answ'$"):
        parser.close()


def test_a_stream_cut_inside_the_end_marker_reads_the_marker_start_as_text():
    parser = PlanParser(lenient=True)
    assert [task.idx for task in parser.feed("1. a()\n<END_OF")] == [1]
    assert parser.close() == [] and not parser.done


# -- the fast path gives exactly what the general path gives ----------------------------------------


def general_path(line, pos):
    """The scanner and ast reading of the call at ``line[pos:]``: (args, kwargs) or the error text."""
    scanner = ArgumentScanner()
    try:
        end = scanner.feed(line[pos:] + "\n")
    except Exception as error:  # ArgumentError
        return ("error", str(error))
    if end is None or line[pos + end:].strip():
        return ("error", "open or trailing text")
    try:
        return read_arguments("".join(scanner.source), 1, "1")
    except PlanSyntaxError as error:
        return ("error", str(error))


def typed(value):
    """A value with every type spelled out (so 1 == 1.0 == True do not hide a difference)."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(item) for item in value])
    if isinstance(value, dict):
        return ("dict", [(typed(key), typed(item)) for key, item in value.items()])
    return (type(value).__name__, repr(value))


SIMPLE_VALUES = ['"x"', "'y'", '""', '"$1"', '"${2}"', "$3", "${4}", "$007", '"cost $5.00 or $1"', "0", "-7", "12",
                 "3.25", "-0.5", "007.5", "True", "False", "None", "[]", "[1, [2, [3]]]", '["a", $1,]',
                 '"é ü 漢"', '"tab\there"', "999999999999999999", "1" * 19, '"a" "b"', "1e3", "0x1f",
                 "1_000", "-True", "(1,)", "{}", '"\\n"', "r'x'", "$1.5", "TRUE", "x", "[,]", "[1 2]"]
SEPARATORS = [", ", ",", " ,  ", "\t,"]


def simple_line(rng):
    parts = []
    for _ in range(rng.randint(0, 4)):
        value = rng.choice(SIMPLE_VALUES)
        if rng.random() < 0.4:
            value = rng.choice(["q", "n", "if", "True", "k_2", "q"]) + rng.choice(["=", " = ", "=="]) + value
        parts.append(value)
    body = rng.choice(SEPARATORS).join(parts) + rng.choice(["", ",", " "])
    return "1. t(" + body + ")" + rng.choice(["", "  ", " x", "\t", ")"])


def mutated(line, rng):
    pos = rng.randrange(len(line) + 1)
    return line[:pos] + rng.choice(['"', "'", "\\", "$", "[", "]", ",", "=", " ", "\x00", "\ud800", "#", ")"]) + line[pos:]


def test_fast_path_agrees_with_the_general_path():
    rng = random.Random(8)
    answered = 0
    for round_ in range(20_000):
        line = simple_line(rng)
        if round_ % 3 == 0:
            line = mutated(line, rng)
        pos = line.index("(") + 1
        fast = read_simple_call(line, pos)
        if fast is None:
            continue
        answered += 1
        args, kwargs, dollars, bare = fast
        general = general_path(line, pos)
        assert general[0] != "error", (line, general)
        assert typed((args, kwargs)) == typed(general), line
        assert references(args, kwargs) == references(*general), line
        leaves = [leaf for leaf in _strings((args, kwargs)) if "$" in leaf]
        assert len(dollars) + len(bare) == len(leaves), line
        assert not Counter(dollars) - Counter(leaves), line
        assert set(bare) <= references(*general)[0], line  # each bare reference is a whole one
    assert answered > 2000  # the fast path takes the common shapes


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def test_parse_plan_takes_the_fast_path_for_common_lines(monkeypatch):
    calls = []
    monkeypatch.setattr(parser_module, "read_arguments", lambda *a: calls.append(a) or ((), {}))
    tasks = parse_plan('1. search("Tokyo")\n2. fetch($1, n=3, tags=["a", $1])\n3. s("about $2", x=-1.5)\n')
    assert [task.dependencies for task in tasks] == [set(), {1}, {2}]
    assert calls == []


# -- error messages never break on the values they show ----------------------------------------------


class Unprintable:
    def __repr__(self):
        raise KeyError("no repr")

    __str__ = __repr__


@pytest.mark.parametrize("data, message", [
    ({"idx": Unprintable(), "tool_name": "t"}, "a task index must be a positive int, got <unprintable Unprintable"),
    ({"idx": 10 ** 5000, "tool_name": "t"}, "a task index must be a positive int of at most 18 digits, got 1000"),
    ({"idx": 3, "tool_name": "t", "args": {"q": 1}, "dependencies": [Unprintable()]},
     "dependencies must be task indices (positive ints of at most 18 digits), got <unprintable Unprintable"),
    ({"tool_name": "t", "args": {"q": 10 ** 5000}}, "task dict has no 'idx'"),
    ({"idx": Unprintable(), "args": {}}, "the dict has no 'tool_name'"),
    ({"idx": 2, "tool_name": "t", "args": 10 ** 5000}, "task 2: 'args' must be a dict or a list, got int"),
])
def test_task_errors_show_any_value(data, message):
    with pytest.raises(PlanError) as info:
        Task.from_dict(data)
    assert message in str(info.value)
    assert len(str(info.value)) < 700


def test_repr_of_a_task_with_unprintable_values():
    task = Task(1, "t", (10 ** 5000, Unprintable()), {"k": "x" * 10 ** 6})
    shown = repr(task)
    assert shown.startswith("Task(idx=1, tool='t', args=(") and "digits" in shown and "unprintable" in shown
    assert len(shown) < 1000
    assert short_repr(task, 100)


# -- random bytes, and what plan text can never do ---------------------------------------------------

def test_random_byte_strings_give_tasks_or_plan_errors():
    rng = random.Random(77)
    outcomes = {"ok": 0, "error": 0}
    for round_ in range(3000):
        text = random_bytes_text(rng)
        try:
            tasks = parse_plan(text, lenient=round_ % 3 == 0)
        except PlanError as error:
            str(error)
            outcomes["error"] += 1
        else:
            assert all(isinstance(task, Task) and literal_only((task.args, task.kwargs)) for task in tasks)
            outcomes["ok"] += 1
    assert outcomes["ok"] > 100 and outcomes["error"] > 100, outcomes


HOSTILE_PLANS = [
    '1. t(__import__("os").system("touch /tmp/pwned"))\n',
    "1. t(open('/etc/passwd').read())\n",
    "1. t(eval('1+1'), exec('x=1'))\n",
    "1. t(().__class__.__bases__[0].__subclasses__())\n",
    "1. t(f'{__import__(\"os\")}')\n",
    "1. t(*__import__('os').environ)\n",
    "1. t(**{'a': __import__('sys')})\n",
    "1. t((lambda: __import__('os'))())\n",
    "1. t(globals(), vars(), locals())\n",
    "1. t([x for x in __import__('os').listdir('/')])\n",
    "1. __import__('os')\n",
    "1. os.system('id')\n",
    "1. t(\"\"\"\n\"\"\" + __import__('os').getcwd())\n",
    "1. t(breakpoint())\n",
    "1. t(b'\\x00')\n",
    "1. t('\\N{LATIN SMALL LETTER A}', u'x')\n",  # the one valid plan: two literal strings
]


@pytest.mark.parametrize("lenient", [False, True])
def test_no_plan_text_imports_evaluates_or_opens_anything(lenient):
    """The parser reads literals only: with import, open, eval and exec forbidden, every hostile plan is a
    PlanError or a task whose arguments are literals (lenient mode: the text itself)."""
    # Load what parsing needs first: the compiler imports unicodedata once, for the first '\N{...}'.
    parse_plan('1. warm("up", [1], {"k": 2.5}, "\\N{BULLET}")\n2. x(a b)\n', lenient=True)
    touched = []

    def forbidden(name):
        def refuse(*args, **kwargs):
            touched.append(name)
            raise AssertionError(f"plan text reached {name}")
        return refuse

    parsed = []
    names = ("__import__", "open", "eval", "exec", "breakpoint", "globals", "vars", "locals")
    saved = {name: getattr(builtins, name) for name in names}
    try:
        for name in names:  # set by hand: monkeypatch itself imports
            setattr(builtins, name, forbidden(name))
        for text in HOSTILE_PLANS:
            try:
                parsed.append((text, parse_plan(text, lenient=lenient)))
            except PlanError:
                continue
    finally:
        for name, value in saved.items():
            setattr(builtins, name, value)
    assert touched == []
    for text, tasks in parsed:
        assert all(literal_only((task.args, task.kwargs)) for task in tasks), text
    if not lenient:  # a tool name is only a name: the registry refuses one it does not hold
        assert [(tasks[0].tool, tasks[0].args) for _, tasks in parsed] == [("__import__", ("os",)), ("t", ("a", "x"))]
