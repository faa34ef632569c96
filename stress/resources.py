"""What this process holds right now: threads, live child processes, open file descriptors, memory."""

from __future__ import annotations

import os
import threading
from typing import NamedTuple


class Holdings(NamedTuple):
    threads: int
    children: int  # every live process below this one
    fds: int
    rss_bytes: int


def process_count() -> int:
    """Live (not zombie) processes below this one: children and their children (the forkserver's
    workers are its children, not ours)."""
    children: dict = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, pending = 0, [os.getpid()]
    while pending:
        below = children.get(pending.pop(), [])
        found += len(below)
        pending += below
    return found


def holdings() -> Holdings:
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    return Holdings(threading.active_count(), process_count(), len(os.listdir("/proc/self/fd")),
                    rss_pages * os.sysconf("SC_PAGE_SIZE"))
