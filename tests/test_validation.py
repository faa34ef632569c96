"""Tests for llmcompiler.validation: the one cycle finder, the checks on new tasks and their messages."""

from __future__ import annotations

import random

import pytest

from llmcompiler import plan
from llmcompiler.errors import CycleError, DuplicateTaskError, UnknownReferenceError
from llmcompiler.plan import Task
from llmcompiler.validation import (
    check_new_tasks,
    cycle_error,
    duplicate_error,
    find_cycle,
    missing_dependency_error,
    self_reference_error,
    unknown_reference_error,
    validate_tasks,
)


# -- find_cycle --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dependencies, cycle",
    [
        ({}, []),
        ({1: [], 2: [1], 3: [1, 2]}, []),
        ({1: [1]}, [1, 1]),
        ({1: [2], 2: [1]}, [1, 2, 1]),
        ({7: [], 1: [3], 2: [1], 3: [2, 7]}, [1, 3, 2, 1]),
        ({1: [], 2: [1, 4], 3: [2], 4: [3]}, [2, 4, 3, 2]),
        ({5: (9, 6), 6: {5}}, [5, 6, 5]),  # 9 is no key: an edge to outside the mapping does not count
        ({1: [2], 2: (3,), 3: frozenset()}, []),
        ({3: [], 2: [3], 1: [2]}, []),
        ({1: [], 2: [1], 3: [4], 4: [2, 3]}, [3, 4, 3]),
    ],
)
def test_find_cycle(dependencies, cycle):
    assert find_cycle(dependencies) == cycle


def test_find_cycle_is_the_same_however_dependencies_are_ordered():
    assert find_cycle({1: [3, 2], 2: [1], 3: [1]}) == find_cycle({1: [2, 3], 2: [1], 3: [1]}) == [1, 2, 1]


def test_find_cycle_on_a_long_chain_and_a_long_loop_without_recursion():
    count = 50_000
    chain = {i: [i - 1] if i > 1 else [] for i in range(1, count + 1)}
    assert find_cycle(chain) == []
    loop = {i: [i % count + 1] for i in range(1, count + 1)}
    cycle = find_cycle(loop)
    assert cycle[0] == cycle[-1] == 1 and len(cycle) == count + 1


def serial_has_cycle(dependencies):
    """A plain reference: Kahn's algorithm leaves tasks over exactly when there is a cycle."""
    remaining = {task: {dep for dep in deps if dep in dependencies} for task, deps in dependencies.items()}
    while True:
        free = [task for task, deps in remaining.items() if not deps]
        if not free:
            return bool(remaining)
        for task in free:
            del remaining[task]
        for deps in remaining.values():
            deps.difference_update(free)


def test_find_cycle_against_a_reference_on_random_graphs():
    rng = random.Random(5)
    found = 0
    for _ in range(400):
        size = rng.randint(1, 30)
        dependencies = {i: rng.sample(range(1, size + 3), rng.randint(0, 3)) for i in range(1, size + 1)}
        cycle = find_cycle(dependencies)
        assert bool(cycle) == serial_has_cycle(dependencies), dependencies
        if cycle:
            found += 1
            assert cycle[0] == cycle[-1] and len(set(cycle[:-1])) == len(cycle) - 1
            for task, dep in zip(cycle, cycle[1:]):  # each really depends on the next
                assert dep in dependencies[task]
    assert 50 < found < 400


# -- check_new_tasks and the messages ----------------------------------------------------------------


def test_check_new_tasks_accepts_new_indices():
    assert check_new_tasks([Task(1, "t"), Task(2, "t", ("$1",))], {5}, known={7}) is None


@pytest.mark.parametrize(
    "batch, taken, known, error, message",
    [
        ([Task(1, "t"), Task(1, "u")], (), (), DuplicateTaskError, "task 1 is defined twice"),
        ([Task(3, "t")], ({3: "x"},), (), DuplicateTaskError, "task 3 is defined twice"),
        ([Task(3, "t")], ({9}, {3}), (), DuplicateTaskError, "task 3 is defined twice"),
        ([Task(3, "t")], (), {3}, DuplicateTaskError, "task 3 is already defined by an earlier plan"),
        ([Task(4, "t", dependencies={4})], (), (), UnknownReferenceError, "task 4 depends on itself"),
    ],
)
def test_check_new_tasks_refuses(batch, taken, known, error, message):
    with pytest.raises(error) as info:
        check_new_tasks(batch, *taken, known=known)
    assert str(info.value) == message
    assert info.value.task == batch[-1].idx


def test_error_builders_carry_their_evidence():
    duplicate = duplicate_error(3, line=5, first_line=2)
    assert (str(duplicate), duplicate.line, duplicate.task) == ("line 5: task 3 is defined twice (first on line 2)", 5, 3)
    itself = self_reference_error(4)
    assert (str(itself), itself.task, itself.reference) == ("task 4 depends on itself", 4, 4)
    missing = missing_dependency_error(2, 9)
    assert str(missing) == "task 2 depends on task 9, which is neither in the plan nor an earlier task"
    assert (missing.task, missing.reference) == (2, 9)
    reference = unknown_reference_error(2, 2, line=3)
    assert str(reference) == "line 3: task 2 refers to $2, which is not an earlier task (a task cannot refer to itself)"
    cycle = cycle_error([1, 3, 1])
    assert isinstance(cycle, CycleError) and str(cycle) == "tasks 1 -> 3 -> 1 form a cycle" and cycle.cycle == [1, 3, 1]


def test_validate_tasks_reports_the_lowest_missing_dependency():
    with pytest.raises(UnknownReferenceError) as info:
        validate_tasks([Task(1, "t", dependencies={12, 9, 1000})])
    assert info.value.reference == 9


def test_names_stay_importable_from_plan():
    assert plan.find_cycle is find_cycle and plan.validate_tasks is validate_tasks
    assert plan.check_new_tasks is check_new_tasks
    from llmcompiler.parser import PlanParser, parse_plan
    assert plan.PlanParser is PlanParser and plan.parse_plan is parse_plan
    with pytest.raises(AttributeError):
        plan.no_such_name  # noqa: B018
