"""Bad input, as an LLM or a careless caller writes it. Each case states its expected outcome:
a typed error naming the problem (line, task, tool, argument), nothing run that should not run, and
nothing lost that was already parsed or computed.

Plans reach the engine four ways and each is tried: ``parse_plan`` (whole text), ``PlanParser`` (a
stream), ``run_tasks`` (text, ``Task``s or dicts) and ``Engine.start`` (tasks added while running).
"""

from __future__ import annotations

import itertools
import random

import pytest

from llmcompiler import Engine, PlanParser, Task, ToolRegistry, parse_plan, run_tasks, validate_tasks
from llmcompiler import errors

WAIT = 30


class Recorder:
    """Tools that record every call, so a test can say that nothing ran."""

    def __init__(self) -> None:
        self.calls: list = []

    def search(self, query):
        self.calls.append(("search", query))
        return f"found {query}"

    def add(self, a, b=0):
        self.calls.append(("add", a, b))
        return a + b

    def registry(self) -> ToolRegistry:
        return ToolRegistry({"search": self.search, "add": self.add})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def refused(text: str, recorder: Recorder, error: type = errors.PlanError) -> BaseException:
    """Assert that ``text`` is refused by ``parse_plan`` and by ``run_tasks`` with the same typed error
    and that no tool ran; returns the error."""
    with pytest.raises(error) as parsed:
        parse_plan(text)
    with pytest.raises(error) as ran:
        run_tasks(text, recorder.registry(), timeout=WAIT)
    assert str(ran.value) == str(parsed.value)
    assert recorder.calls == []
    return parsed.value


# -- lines that are not tasks ------------------------------------------------------------------------

NOT_LITERALS = [
    ("1. search(x)", "a name 'x'"),
    ('1. search(f"a{b}")', "an f-string"),
    ('1. search(len("abc"))', "a call"),
    ("1. search(os.path)", "an attribute"),
    ("1. search(__import__('os'))", "a call"),
    ("1. search(__import__('os').system('rm -rf /'))", "must be literals"),
    ('1. search("a".__class__)', "an attribute"),
    ("1. search(lambda: 1)", "a lambda"),
    ("1. search([c for c in 'ab'])", "a comprehension"),
    ("1. search((q := 1))", "':='"),
    ("1. search(*['a'])", "'*'"),
    ("1. search(**{'query': 'a'})", "must be literals"),
    ("1. search([1][0])", "must be literals"),
    ("1. add(1 + 1)", "must be literals"),
    ("1. search(1j)", "a complex number"),
]


@pytest.mark.parametrize("text, found", NOT_LITERALS, ids=[text for text, _ in NOT_LITERALS])
def test_arguments_that_are_not_literals_are_refused_naming_what_was_found(text, found, recorder):
    err = refused(text, recorder, errors.PlanSyntaxError)
    assert err.line == 1 and "task 1" in str(err) and found in str(err)


@pytest.mark.parametrize("text, expected", [
    ("Search the web for Tokyo", "expected '<n>. tool(args)'"),
    ('1. search("Tokyo"', "not closed"),
    ('1. search("Tokyo)', "not closed"),
    ('1. search("Tokyo") and more', "unexpected text after the call"),
    ("1. os.system('ls')", "plain identifiers"),
    ("1. search('a')\n2 search('b')", "expected '<n>. tool(args)'"),
])
def test_malformed_lines_are_refused_with_the_line(text, expected, recorder):
    err = refused(text, recorder, errors.PlanSyntaxError)
    assert expected in str(err)
    assert err.line == text.count("\n") + 1


def test_an_error_on_a_later_line_names_that_line_and_keeps_the_earlier_tasks(recorder):
    parser = PlanParser()
    assert [t.idx for t in parser.feed('1. search("a")\n2. search("b")\n')] == [1, 2]
    with pytest.raises(errors.PlanSyntaxError) as caught:
        parser.feed("3. search(open('/etc/passwd'))\n")
    assert caught.value.line == 3 and caught.value.task == 3
    assert [t.idx for t in parser.tasks] == [1, 2]  # nothing parsed before the bad line is lost


# -- huge literals and deep nesting ------------------------------------------------------------------

HUGE = {
    "decimal": "9" * 5000,
    "negative decimal": "-" + "9" * 5000,
    "hex": "0x" + "f" * 5000,
    "octal": "0o" + "7" * 5000,
    "binary": "0b" + "1" * 15000,  # 4,516 decimal digits (5,000 binary digits are only 1,506)
    "hex of 100k digits": "0x" + "f" * 100_000,
    "negative hex": "-0x" + "f" * 5000,
    "hex in a list": "[1, 0x" + "f" * 5000 + "]",
    "float exponent": "1e99999",
    "negative float exponent": "-1e99999",
}


@pytest.mark.parametrize("literal", list(HUGE.values()), ids=list(HUGE))
def test_huge_literals_in_every_base_are_a_syntax_error_naming_the_line(literal, recorder):
    for text in (f"1. search({literal})", f"1. add(1, b={literal})"):
        err = refused(text, recorder, errors.PlanSyntaxError)
        assert err.line == 1 and "task 1" in str(err)


def test_huge_literals_never_reach_the_tool_through_the_stream(recorder):
    parser = PlanParser()
    with pytest.raises(errors.PlanSyntaxError):
        for chunk in _chunks('1. search("ok")\n2. search(0x' + "f" * 5000 + ")\n", 64):
            parser.feed(chunk)
        parser.close()
    assert [t.idx for t in parser.tasks] == [1]


def nested(opening: str, closing: str, depth: int, inner: str = "1") -> str:
    return opening * depth + inner + closing * depth


DEEP = {
    "lists": nested("[", "]", 100_000, ""),
    "dicts": nested('{"k": ', "}", 100_000),
    "tuples": nested("(", ")", 100_000),
    "unary minus": "-" * 100_000 + "1",
    "mixed": nested('[{"k": (', ")}]", 30_000),
    "lists, 1000": nested("[", "]", 1000, ""),
}


@pytest.mark.parametrize("argument", list(DEEP.values()), ids=list(DEEP))
def test_deep_nesting_is_a_plan_error_never_a_recursion_error(argument, recorder):
    refused(f"1. search({argument})", recorder, errors.PlanError)
    parser = PlanParser()  # the same through the stream, a few characters at a time
    with pytest.raises(errors.PlanError):
        for chunk in _chunks(f"1. search({argument})\n", 997):
            parser.feed(chunk)
        parser.close()


def test_deeply_nested_task_objects_and_dicts_are_refused_without_recursion_error(recorder):
    deep: list = []
    innermost = deep
    for _ in range(100_000):
        innermost.append([])
        innermost = innermost[0]
    for make in (lambda: Task(1, "search", (deep,)),
                 lambda: validate_tasks([{"idx": 1, "tool_name": "search", "args": {"query": deep}}])):
        try:
            make()
        except errors.PlanError:
            pass  # refused with a typed error: fine (a RecursionError here fails the test)
    assert recorder.calls == []


# -- control characters and invalid UTF-8 ------------------------------------------------------------

CONTROL = [chr(code) for code in itertools.chain(range(0, 32), [127, 0x85, 0x2028, 0x2029, 0xFEFF])]
VALID = '1. search("Tokyo")\n2. add(1, b=2)\n3. search("$1 and $2")\njoin()'


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_a_control_character_anywhere_gives_valid_tasks_or_a_plan_error(char):
    for position in range(0, len(VALID) + 1, 3):
        text = VALID[:position] + char + VALID[position:]
        try:
            tasks = parse_plan(text)
        except errors.PlanError as err:
            assert err.line is not None, f"{text!r}: {err}"  # the error says where
        else:
            assert all(isinstance(task, Task) for task in tasks)


def test_invalid_utf8_decoded_leniently_gives_valid_tasks_or_a_plan_error():
    raw = b'1. search("caf\xc3\xa9 \xff\xfe \xed\xa0\x80")\n2. se\xffarch(1)\n'
    # Lone surrogates (what surrogateescape makes of bad bytes) cannot be read: line 1 is refused.
    # Replacement characters are text: line 1 is a valid task, and line 2's tool name is refused.
    for text, bad_line in ((raw.decode("utf-8", "surrogateescape"), 1), (raw.decode("utf-8", "replace"), 2),
                           ('1. search("\ud800")', 1), ("1. search(\udcff)", 1)):
        parser = PlanParser()
        with pytest.raises(errors.PlanError) as caught:
            parser.feed(text)
            parser.close()
        assert caught.value.line == bad_line
        assert len(parser.tasks) == bad_line - 1
    assert parse_plan(raw.decode("utf-8", "replace").split("\n")[0])[0].args[0].startswith("caf\u00e9 ")


def test_plan_bytes_are_refused_with_a_message_saying_to_decode():
    with pytest.raises(errors.PlanError, match="(?i)decode"):
        parse_plan(b'1. search("Tokyo")')  # type: ignore[arg-type]


# -- references, duplicates, cycles ------------------------------------------------------------------

@pytest.mark.parametrize("text, task, reference", [
    ("1. search($5)", 1, 5),
    ("1. search(${5})", 1, 5),
    ("1. search([{'q': $5}])", 1, 5),
    ('1. search($2)\n2. search("later")', 1, 2),
    ("1. search($1)", 1, 1),
    ('1. search("a")\n2. add($2)', 2, 2),
])
def test_references_to_missing_later_or_own_tasks_name_the_task_and_reference(text, task, reference,
                                                                               recorder):
    err = refused(text, recorder, errors.UnknownReferenceError)
    assert (err.task, err.reference) == (task, reference)
    assert f"${reference}" in str(err)


def test_in_text_dollars_that_name_no_task_stay_text(recorder):
    result = run_tasks('1. search("costs $5, or $1.50")', recorder.registry(), timeout=WAIT)
    assert result.observations == {1: "found costs $5, or $1.50"}


def test_task_lists_and_dicts_with_bad_dependencies_are_refused(recorder):
    cases = [
        ([Task(1, "search", ("$1",))], errors.UnknownReferenceError, "depends on itself"),
        ([Task(1, "search", ("$7",))], errors.UnknownReferenceError, "task 7"),
        ([{"idx": 1, "tool_name": "search", "args": {"query": "x"}, "dependencies": [3]}],
         errors.UnknownReferenceError, "task 3"),
        ([Task(1, "search", ("$2",)), Task(2, "search", ("$3",)), Task(3, "search", ("$1",))],
         errors.CycleError, "form a cycle"),
        ([Task(1, "search", ("a",)), Task(1, "search", ("b",))], errors.DuplicateTaskError, "twice"),
        ([{"idx": 2, "tool_name": "search", "args": {"query": "a"}}] * 2, errors.DuplicateTaskError, "twice"),
    ]
    for tasks, error, message in cases:
        with pytest.raises(error, match=message):
            run_tasks(tasks, recorder.registry(), timeout=WAIT)
    assert recorder.calls == []


def test_a_cycle_carries_its_tasks():
    with pytest.raises(errors.CycleError) as caught:
        validate_tasks([Task(1, "search", ("$2",)), Task(2, "search", ("$1",)), Task(3, "search", ("x",))])
    assert caught.value.cycle[0] == caught.value.cycle[-1] and sorted(caught.value.cycle[:-1]) == [1, 2]


def test_duplicate_indices_in_text_in_known_and_in_a_running_run(recorder):
    err = refused('1. search("a")\n1. search("b")', recorder, errors.DuplicateTaskError)
    assert err.line == 2 and "line 1" in str(err)
    with pytest.raises(errors.DuplicateTaskError, match="earlier plan"):
        parse_plan('1. search("a")', known=[1])
    with Engine(recorder.registry()) as engine:
        run = engine.start([Task(1, "search", ("a",))])
        with pytest.raises(errors.DuplicateTaskError, match="task 1"):
            run.add(Task(1, "search", ("again",)))
        run.close()
        result = run.wait(WAIT)
    assert result.observations == {1: "found a"} and recorder.calls == [("search", "a")]


@pytest.mark.parametrize("item, message", [
    ({"idx": 1, "args": {}}, "no 'tool_name'"),
    ({"idx": "one", "tool_name": "search", "args": {}}, "positive int"),
    ({"idx": True, "tool_name": "search", "args": {}}, "positive int"),
    ({"idx": 0, "tool_name": "search", "args": {}}, "positive int"),
    ({"idx": 1, "tool_name": "search", "args": "x"}, "'args' must be"),
    ({"idx": 2, "tool_name": "search", "args": {}, "dependencies": "1"}, "'dependencies' must be"),
    ({"idx": 1, "tool_name": 5, "args": {}}, "tool name"),
    ("1. search('a')", "must be a Task or a dict"),
])
def test_malformed_task_dicts_are_plan_errors(item, message, recorder):
    with pytest.raises(errors.PlanError, match=message):
        run_tasks([item], recorder.registry(), timeout=WAIT)
    assert recorder.calls == []


# -- tools and their signatures ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('1. search("a")\n2. serch("b")', "task 2: unknown tool 'serch'; known tools: add, search; did you "
                                      "mean 'search'?"),
    ('1. search("a", "b")', "task 1: search() too many positional arguments"),
    ("1. search()", "task 1: search() missing a required argument: 'query'"),
    ('1. search(qeury="a")', "task 1: search() got an unexpected keyword argument 'qeury'; did you "
                             "mean 'query'?"),
    ("1. add(1, c=2)", "task 1: add() got an unexpected keyword argument 'c'"),
    ('1. __builtins__("a")', "unknown tool '__builtins__'"),
])
def test_unknown_tools_and_arguments_that_do_not_fit_are_refused_before_anything_runs(text, expected,
                                                                                       recorder):
    with pytest.raises(errors.ToolCallError) as caught:
        run_tasks(text, recorder.registry(), timeout=WAIT)
    assert expected in str(caught.value)
    assert caught.value.task == text.count("\n") + 1
    assert recorder.calls == []


@pytest.mark.parametrize("path, named", [
    ("no_such_module_for_tests:search", "no_such_module_for_tests"),
    ("json:no_such_function", "no_such_function"),
    ("tools_fixture_broken:anything", "tools_fixture_broken"),
])
def test_a_tool_path_that_does_not_import_fails_the_plan_before_anything_runs(path, named, recorder):
    registry = recorder.registry()
    registry.register(path, name="lookup")
    with pytest.raises(errors.ToolCallError) as caught:
        run_tasks('1. search("a")\n2. lookup("b")', registry, timeout=WAIT)
    assert caught.value.tool == "lookup" and caught.value.task == 2
    assert named in str(caught.value)
    assert recorder.calls == []


def test_a_bad_task_added_to_a_running_run_is_refused_and_the_rest_runs(recorder):
    with Engine(recorder.registry()) as engine:
        run = engine.start([Task(1, "search", ("a",))])
        with pytest.raises(errors.ToolCallError, match="unknown tool 'nope'"):
            run.add(Task(2, "nope"))
        with pytest.raises(errors.ToolCallError, match="missing a required argument"):
            run.add(Task(3, "add"))
        with pytest.raises(errors.UnknownReferenceError, match="itself"):
            run.add(Task(4, "search", ("$4",)))
        run.add(Task(5, "search", ("$1",)))
        run.close()
        result = run.wait(WAIT)
    assert result.observations == {1: "found a", 5: "found found a"}
    assert set(result.tasks) == {1, 5} and not result.failures


# -- streams that break off --------------------------------------------------------------------------

def test_a_stream_that_breaks_off_mid_line_fails_that_line_and_keeps_what_came_before(recorder):
    parser = PlanParser()
    with Engine(recorder.registry()) as engine:
        run = engine.start()
        for chunk in _chunks('1. search("Tokyo")\n2. add(1, b=2)\n3. search("Par', 5):
            run.add_many(parser.feed(chunk))
        with pytest.raises(errors.PlanSyntaxError) as caught:
            parser.close()
        run.close()
        result = run.wait(WAIT)
    assert caught.value.line == 3 and caught.value.task == 3
    assert result.observations == {1: "found Tokyo", 2: 3}  # the complete lines ran, nothing else
    assert ("search", "Par") not in recorder.calls and len(recorder.calls) == 2


@pytest.mark.parametrize("cut", ['3. search("Paris"', "3. search(", "3. sea", "3", '3. search("""Par'])
def test_every_place_a_stream_can_break_is_a_plan_error_on_the_last_line(cut):
    parser = PlanParser()
    parser.feed('1. search("a")\n2. search("b")\n' + cut)
    with pytest.raises(errors.PlanError) as caught:
        parser.close()
    assert caught.value.line == 3
    assert [t.idx for t in parser.tasks] == [1, 2]


def test_a_stream_that_never_sends_join_ends_at_close_with_every_complete_task(recorder):
    parser = PlanParser()
    tasks = parser.feed('1. search("a")\n2. add(1, b=2)\n3. search("$1")')  # no newline, no join()
    tasks += parser.close()
    assert [t.idx for t in tasks] == [1, 2, 3]
    assert not parser.done  # the plan did not say it was complete: the caller can tell
    result = run_tasks(tasks, recorder.registry(), timeout=WAIT)
    assert result.observations == {1: "found a", 2: 3, 3: "found found a"}


def test_feeding_after_close_or_after_the_end_adds_nothing():
    parser = PlanParser()
    assert [t.idx for t in parser.feed('1. search("a")\njoin()\n2. search("b")\n')] == [1]
    assert parser.done and parser.feed('3. search("c")\n') == [] and parser.close() == []


def test_random_cuts_of_a_real_plan_are_valid_prefixes_or_plan_errors():
    plan = ('Thought: look both up.\n1. search("population of Tokyo")\n2. search(query="Paris, \\"FR\\"")\n'
            '3. add($1, b=[1, {"k": (2, 3)}])\n4. search("""multi\nline $3""")\njoin()<END_OF_PLAN>')
    full = [t.idx for t in parse_plan(plan)]
    rng = random.Random(8)
    for cut in sorted(rng.sample(range(len(plan)), 150)):
        parser = PlanParser()
        try:
            got = parser.feed(plan[:cut]) + parser.close()
        except errors.PlanError:
            got = parser.tasks
        assert [t.idx for t in got] == full[:len(got)]  # always a prefix of the whole plan's tasks


def _chunks(text: str, size: int):
    return [text[i:i + size] for i in range(0, len(text), size)]
