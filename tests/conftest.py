"""Shared fixtures: every test must leave no thread and no child process behind."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # fixture modules, importable by worker processes too


def child_pids() -> set:
    """Live child processes of this process, less multiprocessing's own long-lived helpers (the
    forkserver and the resource tracker, which live until the interpreter exits, by design)."""
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry))
    return found - _multiprocessing_helpers()


def _multiprocessing_helpers() -> set:
    helpers = set()
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is not None and forkserver._forkserver._forkserver_pid:
        helpers.add(forkserver._forkserver._forkserver_pid)
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    if tracker is not None and tracker._resource_tracker._pid:
        helpers.add(tracker._resource_tracker._pid)
    return helpers


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves a thread or a child process running (after a short grace period)."""
    threads_before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        children = child_pids()
        if not threads and not children or time.monotonic() > deadline:
            break
        for thread in threads:
            thread.join(timeout=0.05)
        if children:
            time.sleep(0.05)
    assert not threads, f"threads left behind: {threads}"
    assert not children, f"child processes left behind: {sorted(children)}"
