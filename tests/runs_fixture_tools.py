"""Process tools for test_runs.py: top-level functions, so worker processes can import them."""

import os
import time


def nap_marked(seconds, marker, value=None):
    """Create ``marker`` (the call has really started), then sleep."""
    with open(marker, "w"):
        pass
    time.sleep(seconds)
    return value


def square(x):
    return x * x
