"""ReadyQueue: the highest priority first, ties to the lower index, per kind, through re-keying."""

import random

import pytest

from llmcompiler.ready import ReadyQueue


def _expected(entries):
    """The order a ready queue must pop ``{idx: priority}`` in."""
    return [idx for idx, _ in sorted(entries.items(), key=lambda item: (-item[1], item[0]))]


@pytest.mark.parametrize("seed", range(20))
def test_pops_follow_priority_then_index_through_pushes_and_rekeying(seed):
    rng = random.Random(seed)
    queue = ReadyQueue()
    held = {"thread": {}, "process": {}}  # kind -> {idx: priority}, the reference
    for idx in rng.sample(range(1, 400), 300):
        kind = rng.choice(("thread", "process"))
        priority = float(rng.randint(0, 6)) * rng.choice((1.0, 0.25))  # shared priorities and -0.0 ties
        held[kind][idx] = priority
        queue.push(kind, priority, idx)
        if rng.random() < 0.3:
            pop_kind = rng.choice(("thread", "process"))
            want = _expected(held[pop_kind])
            got = queue.pop(pop_kind)
            assert got == (want[0] if want else None)
            if want:
                del held[pop_kind][got]
        if rng.random() < 0.02:  # a batch raised heights: every priority changes
            for entries in held.values():
                for key in entries:
                    entries[key] = float(rng.randint(0, 9))
            table = {idx: p for entries in held.values() for idx, p in entries.items()}
            queue.reprioritise(table.__getitem__)
        assert queue.count == sum(len(entries) for entries in held.values())
        assert queue.size("thread") == len(held["thread"])
        assert queue.has("process") == bool(held["process"])
    for kind, entries in held.items():
        want = _expected(entries)
        assert queue.peek(kind) == (want[0] if want else None)
        assert [queue.pop(kind) for _ in want] == want
        assert queue.pop(kind) is None and queue.peek(kind) is None
    assert queue.count == 0 and queue.kinds() == []


def test_reprioritise_adds_new_tasks_and_kinds_once():
    queue = ReadyQueue()
    queue.push("thread", 1.0, 5)
    priorities = {5: 0.0, 7: 2.0, 3: 2.0, 9: 1.0}
    queue.reprioritise(priorities.__getitem__, [("thread", 7), ("thread", 3), ("process", 9)])
    assert queue.count == 4 and sorted(queue.kinds()) == ["process", "thread"]
    assert [queue.pop("thread") for _ in range(3)] == [3, 7, 5]
    assert queue.pop("process") == 9
    queue.push("thread", 1.0, 1)
    queue.clear()
    assert queue.count == 0 and queue.pop("thread") is None
