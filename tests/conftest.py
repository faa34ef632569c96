"""Shared fixtures: every test must leave no thread and no process behind.

"No process" covers the whole tree below this process: pool workers started by multiprocessing's
forkserver are its children, not ours, and are counted too.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # fixture modules, importable by worker processes too

GRACE = 5.0  # seconds a closed engine's threads and processes get to exit before the test fails


def _parents() -> dict:
    """pid -> parent pid of every live (not zombie) process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    return parents


def descendant_pids() -> set:
    """Every live process below this one (children, and their children: forkserver workers)."""
    parents = _parents()
    children: dict = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, pending = set(), [os.getpid()]
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def child_pids() -> set:
    """Live processes below this one, less multiprocessing's own long-lived processes (the forkserver
    and the resource tracker, which live until the interpreter exits, by design)."""
    return descendant_pids() - _multiprocessing_servers()


def _multiprocessing_servers() -> set:
    found = set()
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is not None and forkserver._forkserver._forkserver_pid:
        found.add(forkserver._forkserver._forkserver_pid)
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    if tracker is not None and tracker._resource_tracker._pid:
        found.add(tracker._resource_tracker._pid)
    return found


TEST_LIMIT = 240  # seconds: a test still running then is hung; the suite stops and says where


@pytest.fixture(autouse=True)
def hang_guard():
    """A hung test must fail the suite, not stall it: past TEST_LIMIT every thread's traceback is
    written to stderr and the process exits (the standard library's faulthandler, no plugin)."""
    faulthandler.dump_traceback_later(TEST_LIMIT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves a thread or a process running that it started (after a grace period
    in which each leftover thread is joined, a bounded wait)."""
    threads_before = set(threading.enumerate())
    processes_before = child_pids()
    yield
    deadline = time.monotonic() + GRACE
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        processes = child_pids() - processes_before
        if not threads and not processes or time.monotonic() > deadline:
            break
        for thread in threads:
            thread.join(timeout=0.05)
        if processes:
            time.sleep(0.05)
    assert not threads, f"threads left behind: {threads}"
    assert not processes, f"processes left behind: {sorted(processes)}"
