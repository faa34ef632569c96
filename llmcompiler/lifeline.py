"""The lifeline: every process the engine starts exits by itself when the process that started it dies.

The standard library does not do this: a ``ProcessPoolExecutor`` worker or a ``Manager`` server whose
parent was SIGKILLed keeps running (a busy worker until its call returns, an idle one and the manager
for ever). The lifeline is one pipe per parent process:

    parent                                   child (worker process, manager process)
    ------                                   ---------------------------------------
    holds the write end, never writes        inherits the read end only (passed as an argument)
    ... dies: the kernel closes the end  --> a daemon thread's read() returns EOF -> os._exit(LOST)

Invariant: only the parent holds the write end. Both ends are non-inheritable, so programs started with
``exec`` never get them; ``spawn`` and ``forkserver`` children get only the read end, passed explicitly
as an initializer argument; a ``fork`` child inherits every descriptor, so an at-fork hook closes the
write end in it. No lock is taken in that hook (another thread may hold it at the fork).
"""

from __future__ import annotations

import os
import threading
from multiprocessing.connection import Connection
from typing import List, Optional

__all__ = ["lifeline_reader", "watch_parent", "LIFELINE_EXIT_CODE"]

# The exit status of a child that lost its parent (EX_SOFTWARE-like, distinct from a tool's os._exit).
LIFELINE_EXIT_CODE = 71

_lock = threading.Lock()
_reader: Optional[Connection] = None    # the read end handed to children (owned by _owner_pid)
_writer_fd: Optional[int] = None        # the write end: only the owner process may hold it
_owner_pid: Optional[int] = None
_inherited: List[Connection] = []       # read ends inherited through fork: kept open, never reused


def lifeline_reader() -> Connection:
    """The read end of this process's lifeline, created on first use: pass it to a child process as
    an argument (its ``initializer`` arguments) and call ``watch_parent`` with it there."""
    global _reader, _writer_fd, _owner_pid
    with _lock:
        if _reader is None or _owner_pid != os.getpid():
            if _reader is not None:
                _inherited.append(_reader)  # a fork child's copy of its parent's: may be watched
            read_fd, write_fd = os.pipe()  # non-inheritable (PEP 446)
            _reader = Connection(read_fd, readable=True, writable=False)
            _writer_fd, _owner_pid = write_fd, os.getpid()
        return _reader


def watch_parent(reader: Connection) -> None:
    """In a child process: start a daemon thread that ends this process (``os._exit``) as soon as the
    parent that holds the lifeline's write end has died. Returns at once."""
    threading.Thread(target=_exit_at_eof, args=(reader.fileno(),), name="llmcompiler-lifeline",
                     daemon=True).start()


def _exit_at_eof(fd: int) -> None:
    try:
        while os.read(fd, 1):
            pass  # the parent never writes; were it to, keep waiting for the end
    except OSError:
        pass  # closed under us: the parent is gone all the same
    os._exit(LIFELINE_EXIT_CODE)


def _close_write_end_in_child() -> None:
    """After ``fork``, in the child: this process must not keep its parent's lifeline alive."""
    global _writer_fd
    fd, _writer_fd = _writer_fd, None
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass  # already closed


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_write_end_in_child)
