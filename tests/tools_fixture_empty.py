"""A module with functions but no tools, for ToolRegistry.from_module in test_tools.py."""


def plain(x: int) -> int:
    return x
