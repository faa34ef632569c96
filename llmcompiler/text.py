"""Turning any value into text: the one place the package does it.

Observations are whatever tools return, so nothing here may assume a value prints cleanly: an ``int``
of more than 4,300 digits makes ``str()`` raise, a class's ``__str__`` or ``__repr__`` may raise, a
container may contain itself or nest thousands deep, a string may be 100 MB.

* ``exact_text(value)``: the value's ``str()``, exactly, as reference substitution (``"got $1"``)
  needs it. Huge ints are written out in full (by splitting on powers of ten, not through the
  interpreter's digit limit). Raises ``RenderError`` when the value's own ``__str__`` fails.
* ``short_text(value, limit)`` / ``short_repr(value, limit)``: for people and prompts. Never raise;
  at most ``limit`` characters (long text keeps its head and tail around a note of what was cut);
  a value that cannot be shown is described as ``<unprintable T: error>``. The value itself is never
  changed: the observation is kept whole, only its picture is shortened.

Imports nothing from the package but ``errors``.
"""

from __future__ import annotations

import reprlib
from typing import Any, Dict

from .errors import RenderError

__all__ = ["exact_text", "short_text", "short_repr", "int_text", "DISPLAY_LIMIT"]

DISPLAY_LIMIT = 2000  # characters of one value shown in a prompt or a table, unless told otherwise

# Below this many bits, str() of an int is within the interpreter's default digit limit (4,300).
_SAFE_INT_BITS = 4000 * 3
_powers: Dict[int, int] = {}  # k -> 10 ** (2 ** k), built on first need


def int_text(number: int) -> str:
    """The decimal digits of any ``int``, however long (``str()`` refuses past 4,300 digits)."""
    if number < 0:
        return "-" + int_text(-number)
    if number.bit_length() < _SAFE_INT_BITS:
        return str(number)
    # Divide and conquer: split on the largest 10 ** (2 ** k) below the number; the low half is
    # zero-padded to exactly 2 ** k digits.
    k = 0
    while _power(k + 1) <= number:
        k += 1
    high, low = divmod(number, _power(k))
    return int_text(high) + int_text(low).rjust(2 ** k, "0")


def _power(k: int) -> int:
    found = _powers.get(k)
    if found is None:
        found = _powers[k] = 10 ** (2 ** k)
    return found


def exact_text(value: Any) -> str:
    """``str(value)`` in full. Raises ``RenderError`` (its cause the original error) when it fails."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return int_text(value)
    try:
        return str(value)
    except ValueError as err:
        if isinstance(value, int) and "digits" in str(err):  # an int subclass
            return int_text(int(value))
        raise _render_error(value, "str", err) from err
    except Exception as err:  # the value's own __str__ broke: say so, naming its type
        raise _render_error(value, "str", err) from err


def _render_error(value: Any, how: str, err: BaseException) -> RenderError:
    return RenderError(f"{how}() of a {type(value).__name__} value raised {type(err).__name__}: "
                       f"{_plain_message(err)}", value_type=type(value).__name__)


def _plain_message(err: BaseException) -> str:
    try:
        return _cut(str(err), 200)
    except Exception:
        return "(its message cannot be shown either)"


def _cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters: head and tail kept around a note of how much was cut."""
    if len(text) <= limit:
        return text
    note = f"...[{len(text) - limit:,} more characters]..."
    if limit <= len(note) + 2:
        return text[:limit]
    head = (limit - len(note)) * 2 // 3
    tail = limit - len(note) - head
    return text[:head] + note + (text[-tail:] if tail else "")


def short_text(value: Any, limit: int = DISPLAY_LIMIT) -> str:
    """``str(value)`` for display, at most ``limit`` characters. Never raises."""
    if type(value) is str:
        return _cut(value, limit)  # slicing: a 100 MB string is never copied whole
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return short_repr(value, limit)  # their str() is their repr()
    try:
        return _cut(exact_text(value), limit)
    except RenderError:
        return _unprintable(value)
    except RecursionError:
        return _unprintable(value, "RecursionError")


def short_repr(value: Any, limit: int = DISPLAY_LIMIT) -> str:
    """``repr(value)`` for display, at most ``limit`` characters. Never raises.

    Containers are shown to a bounded depth and length; strings inside them are shortened too."""
    try:
        return _cut(_ShortRepr(limit).repr(value), limit)
    except Exception as err:  # reprlib itself gave up (an exotic container)
        return _unprintable(value, type(err).__name__)


def _unprintable(value: Any, why: str = "") -> str:
    try:
        name = type(value).__name__
    except Exception:
        name = "object"
    return f"<unprintable {name}{': ' + why if why else ''}>"


class _ShortRepr(reprlib.Repr):
    """``reprlib`` with room for real values, exact huge ints and objects whose repr raises."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxlevel = 6
        self.maxtuple = self.maxlist = self.maxarray = self.maxset = self.maxfrozenset = 100
        self.maxdeque = self.maxdict = 100
        self.maxstring = self.maxother = self.maxlong = max(limit, 20)

    def repr_int(self, value: int, level: int) -> str:
        text = int_text(value)
        if len(text) <= self.maxlong:
            return text
        return f"{text[:12]}...[{len(text):,} digits]...{text[-6:]}"

    def repr_str(self, value: str, level: int) -> str:
        return repr(_cut(value, self.maxstring))

    def repr_instance(self, value: Any, level: int) -> str:
        try:
            text = repr(value)
        except RecursionError:
            return _unprintable(value, "RecursionError")
        except Exception as err:
            return _unprintable(value, f"{type(err).__name__} in __repr__")
        return _cut(text, self.maxother)

