"""A tool module whose import fails, for test_tools.py."""

raise RuntimeError("boom at import")
