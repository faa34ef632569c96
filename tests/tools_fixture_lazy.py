"""Imported only through a 'module:attr' path by test_tools.py, to show the import is lazy."""

IMPORTS = []
IMPORTS.append("imported")


def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"
