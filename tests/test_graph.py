"""The growing dependency graph: counts, release, failure propagation, heights, cycles."""

import random

from llmcompiler.graph import TaskGraph


def test_a_task_with_finished_dependencies_is_ready_at_once():
    graph = TaskGraph(finished=[1])
    assert graph.add(2, [1]) == (True, None)
    assert graph.active == {2}


def test_done_releases_a_dependent_only_when_its_last_dependency_finishes():
    graph = TaskGraph()
    assert graph.add(1, []) == (True, None)
    assert graph.add(2, []) == (True, None)
    assert graph.add(3, [1, 2]) == (False, None)
    assert graph.done(1) == []
    assert graph.waiting == {3: 1}
    assert graph.done(2) == [3]
    assert graph.unfinished == 1
    assert graph.done(3) == []
    assert graph.unfinished == 0


def test_a_dependency_added_later_is_waited_for():
    graph = TaskGraph()
    assert graph.add(1, [41]) == (False, None)
    assert graph.missing() == [41]
    assert graph.add(41, []) == (True, None)
    assert graph.missing() == []
    assert graph.done(41) == [1]


def test_fail_skips_everything_downstream_but_not_independent_tasks():
    graph = TaskGraph()
    for idx, deps in [(1, []), (2, [1]), (3, [2]), (4, []), (5, [4, 3])]:
        graph.add(idx, deps)
    assert sorted(graph.fail(1)) == [2, 3, 5]
    assert graph.active == {4}
    assert graph.done(4) == []
    assert graph.unfinished == 0


def test_a_task_added_after_its_dependency_failed_is_dead_at_once():
    graph = TaskGraph()
    graph.add(1, [])
    graph.fail(1)
    assert graph.add(2, [1]) == (False, 1)
    assert 2 in graph.dead and graph.unfinished == 0


def test_heights_grow_with_known_dependents():
    graph = TaskGraph()
    graph.add(1, [])
    graph.add(2, [])
    graph.add(3, [1])
    graph.add(4, [3])
    assert graph.height[1] == 2 and graph.height[2] == 0 and graph.height[3] == 1


def test_update_heights_matches_incremental_heights_on_random_dags():
    rng = random.Random(7)
    for _ in range(50):
        n = rng.randint(1, 60)
        edges = {i: rng.sample(range(1, i), min(i - 1, rng.randint(0, 3))) for i in range(1, n + 1)}
        one_by_one, batched = TaskGraph(), TaskGraph()
        for idx, deps in edges.items():
            one_by_one.add(idx, deps)
            batched.add(idx, deps, heights=False)
        batched.update_heights(edges)
        assert batched.height == one_by_one.height


def test_find_cycle_names_the_cycle():
    graph = TaskGraph()
    graph.add(1, [3])
    graph.add(2, [1])
    graph.add(3, [2])
    graph.add(4, [])
    cycle = graph.find_cycle()
    assert cycle[0] == cycle[-1] and sorted(cycle[:-1]) == [1, 2, 3]


def test_find_cycle_is_empty_for_a_dag():
    graph = TaskGraph()
    graph.add(1, [])
    graph.add(2, [1])
    assert graph.find_cycle() == []


def test_cancel_all_returns_every_unfinished_task():
    graph = TaskGraph()
    graph.add(1, [])
    graph.add(2, [1])
    graph.done(1)
    graph.add(3, [9])
    assert graph.cancel_all() == [2, 3]
    assert graph.unfinished == 0
