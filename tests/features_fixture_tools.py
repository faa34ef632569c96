"""Process tools for test_features.py: top-level functions, so worker processes can import them."""

from llmcompiler.context import RunContext


def total_so_far(ctx: RunContext) -> int:
    """The sum of every observation the run has when this task starts."""
    return sum(ctx.observations[idx] for idx in ctx.observations)


def square(x):
    return x * x


def where(x):
    """The name of the thread running the call, and the argument."""
    import threading

    return threading.current_thread().name.startswith("cluster"), x
