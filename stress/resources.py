"""What this process holds right now: threads, live child processes, open file descriptors, memory."""

from __future__ import annotations

import os
import threading
from typing import NamedTuple, Tuple


class Holdings(NamedTuple):
    threads: int
    children: int  # every live process below this one
    fds: int       # open file descriptors but sockets
    rss_bytes: int
    sockets: int   # open sockets: a manager store's connections, one per thread that used it


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


def _descriptors() -> Tuple[int, int]:
    """``(others, sockets)``: this process's open descriptors, sockets counted apart."""
    others = sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing (the listing's own descriptor among them)
            continue
        if target.startswith("socket:"):
            sockets += 1
        else:
            others += 1
    return others, sockets


def holdings() -> Holdings:
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    others, sockets = _descriptors()
    return Holdings(threading.active_count(), process_count(), others, rss_pages * os.sysconf("SC_PAGE_SIZE"),
                    sockets)
