"""Stand-ins for what the pictures (trace.py, svg.py) read of a run: shared by their tests."""


class Failure:
    """The fields of a TaskFailure the pictures read."""

    def __init__(self, kind, cause=None, error_type="", message=""):
        self.kind, self.cause, self.error_type, self.message = kind, cause, error_type, message


class Source:
    """A result's events, failures and tasks."""

    def __init__(self, events, failures=None, tasks=None):
        self.events, self.failures, self.tasks = events, failures or {}, tasks or {}
