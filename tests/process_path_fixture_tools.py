"""Process tools for test_process_path.py: top-level functions, so worker processes can import them."""

import asyncio
import os


def _refuse_to_rebuild():
    raise LookupError("this value cannot be rebuilt here")


class Unreadable:
    """Pickles in the worker, but unpickling it raises (in the parent)."""

    def __reduce__(self):
        return (_refuse_to_rebuild, ())


def return_unreadable():
    return Unreadable()


def return_list(*items):
    return list(items)


class Awaitable:
    """An awaitable that is neither a coroutine nor a plain type: its result is what the call returns."""

    def __await__(self):
        yield from asyncio.sleep(0).__await__()
        return os.getpid()


def return_awaitable():
    return Awaitable()
