"""The single-call path of process tools: what a worker sends back, and how the parent rebuilds it.

Every process call of a run that is not batched goes this way (``executors.run_calls`` with
``single``): its outcome comes back as one blob, and the worker keeps the callables it loaded.
"""

from __future__ import annotations

import os
import pickle

import pytest

import llmcompiler.calls as calls
import llmcompiler.executors as executors
from llmcompiler.errors import ToolDefinitionError, WorkerReturnError
from llmcompiler.executors import CallOutcome, Pools

WAIT = 60
FX = "process_path_fixture_tools"


@pytest.fixture
def pools():
    made = Pools(process_workers=1)
    yield made
    made.close()


def test_a_single_value_that_cannot_be_rebuilt_here_fails_its_call_only(pools):
    outcome = pools.submit_process(1, f"{FX}:return_unreadable", (), {})[1].result(WAIT)
    assert isinstance(outcome.error, WorkerReturnError) and outcome.value is None
    assert "cannot be unpickled in this process" in str(outcome.error)
    assert "LookupError: this value cannot be rebuilt here" in str(outcome.error)
    assert outcome.worker.startswith("process-") and outcome.started <= outcome.finished
    again = pools.submit_process(2, f"{FX}:return_list", (1, "b"), {})[1].result(WAIT)
    assert again == CallOutcome([1, "b"], None, "", again.started, again.finished, outcome.worker)


def test_an_awaitable_of_a_class_of_its_own_is_awaited(pools):
    outcome = pools.submit_process(1, f"{FX}:return_awaitable", (), {})[1].result(WAIT)
    assert outcome.error is None and outcome.value != os.getpid()
    assert outcome.worker == f"process-{outcome.value}"


def test_a_batch_outcome_that_cannot_be_rebuilt_names_its_real_error():
    stamps = [(1.0, 2.0, "process-7"), (2.0, 3.0, "process-7")]
    for outcomes in (executors._rebuilt(b"\x80\x05not a pickle", stamps, single=False),
                     [executors._rebuilt_one(b"\x80\x05not a pickle", *stamps[0])]):
        assert all(isinstance(o.error, WorkerReturnError) for o in outcomes)
        assert "UnpicklingError" in str(outcomes[0].error)  # not the EOFError of an empty blob
        assert [(o.started, o.finished, o.worker) for o in outcomes] == stamps[:len(outcomes)]
    readable = pickle.dumps((1, None, "", 1.0, 2.0, "w"))
    assert executors._rebuilt_one(readable, 1.0, 2.0, "w") == CallOutcome(1, None, "", 1.0, 2.0, "w")


def test_loaded_targets_are_kept_and_failures_are_not():
    first = calls.load_target(f"{FX}:return_list")
    assert calls.load_target(f"{FX}:return_list") is first and first(1) == [1]
    for _ in range(2):  # not kept: each attempt imports again, and says why
        with pytest.raises(ToolDefinitionError, match="no module named 'no_such_module_here'"):
            calls.load_target("no_such_module_here:f")
    assert "no_such_module_here:f" not in calls._loaded
