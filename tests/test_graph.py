"""The growing dependency graph: counts, release, failure propagation, heights, cycles."""

import random

import pytest

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


def test_batched_heights_match_one_by_one_across_batches_and_orders():
    # Plans arrive in batches (replans, streamed chunks): numbered on from the last, in plan order
    # (the pass from the end) or shuffled (counting), some tasks finished between batches, costs
    # mixed; a batch that names a later task of its own falls back to counting, as does one added
    # out of order and then named in order.
    rng = random.Random(11)
    for trial in range(200):
        one_by_one, batched = TaskGraph(), TaskGraph()
        first = 1
        for _ in range(rng.randint(1, 4)):
            size = rng.randint(1, 40)
            batch = list(range(first, first + size))
            edges = {i: rng.sample(range(1, i), min(i - 1, rng.randint(0, 3))) for i in batch}
            if trial % 5 == 0 and size > 1:  # one task names a later task of the same batch
                edges[batch[0]] = [batch[-1]]
                edges[batch[-1]] = [d for d in edges[batch[-1]] if d < first]  # no cycle
            order = batch[:] if trial % 3 else rng.sample(batch, size)
            if trial % 5 == 0 and size > 1:  # the later task added first: no forward reference
                order = [batch[-1]] + batch[:-1]
            costs = {i: rng.choice((1.0, 0.5, 3.0)) for i in batch}
            for idx in order:
                deps = [d for d in edges[idx] if d not in one_by_one.finished]
                one_by_one.add(idx, deps, cost=costs[idx])
                batched.add(idx, deps, heights=False, cost=costs[idx])
            batched.update_heights(batch if trial % 2 else order)  # added shuffled, named in order
            assert batched.height == one_by_one.height, (trial, batch)
            for idx in list(one_by_one.active):
                if rng.random() < 0.5:
                    one_by_one.done(idx)
                    batched.done(idx)
            first += size


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


# -- phase checks, as graphlib makes them: misuse raises at once, naming the task ---------------------

MISUSE = (ValueError, RuntimeError)  # graphlib raises ValueError; a RunError would do as well


def test_done_on_an_unknown_task_raises_naming_it():
    graph = TaskGraph()
    graph.add(1, [])
    with pytest.raises(MISUSE, match=r"\b5\b"):
        graph.done(5)
    assert graph.unfinished == 1


def test_done_on_a_task_still_waiting_raises_naming_it():
    graph = TaskGraph()
    graph.add(1, [])
    graph.add(2, [1])
    with pytest.raises(MISUSE, match=r"\b2\b"):
        graph.done(2)
    assert graph.done(1) == [2]  # the failed call changed nothing


def test_done_twice_raises_and_releases_nothing_twice():
    graph = TaskGraph()
    graph.add(1, [])
    graph.add(2, [1])
    assert graph.done(1) == [2]
    with pytest.raises(MISUSE, match=r"\b1\b"):
        graph.done(1)
    assert graph.waiting == {} and graph.active == {2}


def test_random_operations_keep_the_counts_consistent():
    """add / done / fail in random order against a plain model of the same graph."""
    rng = random.Random(11)
    for _ in range(200):
        graph, deps, state = TaskGraph(), {}, {}
        for idx in range(1, rng.randint(2, 40)):
            deps[idx] = rng.sample(range(1, idx), min(idx - 1, rng.randint(0, 3)))
            graph.add(idx, deps[idx])
            state[idx] = "ready" if not deps[idx] else "waiting"
        while any(s == "ready" for s in state.values()):
            idx = rng.choice([i for i, s in state.items() if s == "ready"])
            if rng.random() < 0.2:
                dead = set(graph.fail(idx))
                state[idx] = "failed"
                expected_dead = _downstream(idx, deps) - {i for i, s in state.items() if s in ("done", "failed", "dead")}
                assert dead == expected_dead
                for i in dead:
                    state[i] = "dead"
            else:
                released = set(graph.done(idx))
                state[idx] = "done"
                assert released == {i for i, s in state.items() if s == "waiting" and
                                    all(state[d] == "done" for d in deps[i])}
                for i in released:
                    state[i] = "ready"
            assert graph.unfinished == sum(s in ("ready", "waiting") for s in state.values())
        assert graph.unfinished == 0


def _downstream(idx, deps):
    found, changed = set(), True
    while changed:
        changed = False
        for task, needs in deps.items():
            if task not in found and (idx in needs or found & set(needs)):
                found.add(task)
                changed = True
    return found


def test_a_task_dead_at_its_adding_skips_the_tasks_already_waiting_on_it():
    graph = TaskGraph()
    graph.add(2, [3])            # waits on 3, not added yet
    graph.add(1, [])
    graph.fail(1)
    assert graph.add(3, [1]) == (False, 1)
    assert graph.fail(3) == [2]  # what the scheduler calls next
    assert graph.unfinished == 0 and graph.dead == {1, 2, 3} and graph.missing() == []


def test_done_records_the_observation_in_finished():
    observed = {7: "earlier"}
    graph = TaskGraph(observed)
    assert graph.add(1, [7]) == (True, None)
    graph.done(1, "value")
    assert observed == {7: "earlier", 1: "value"} and graph.finished is observed
