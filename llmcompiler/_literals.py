"""Reading the argument text of one call of the plan language, without evaluating it.

``ArgumentScanner`` reads a call's arguments line by line as they stream in: it tracks brackets and
string quotes (so a call may span lines while one is open), finds the ``)`` that closes the call, refuses
comments and a stray ``$``, and turns every bare ``$N`` / ``${N}`` outside a string into the string
literal ``"$N"``; it raises ``ArgumentError``, which the parser reports with the line and task.
``read_arguments`` then parses that text with ``ast`` and accepts only literals -- str, int, float, bool,
None, list, tuple, dict, a sign on a number -- raising ``PlanSyntaxError`` naming the first thing that is
not one. Literals are bounded: an int of more than ``MAX_DIGITS`` decimal digits (in any base), a float
that overflows, a NUL character or a lone surrogate is refused with a message saying so, before
anything later has to print the value.

``read_simple_call`` is the fast path for the common one-line call of plain literals: it reads it
without ``ast`` and answers None for anything else, which then takes the path above.

What ``$N`` means, and the rest of the plan language, belongs to ``parser`` (the only user of this
module) and ``plan``. It imports nothing from the package but ``errors`` and ``plan.MAX_NESTING``.
"""

from __future__ import annotations

import ast
import keyword as keyword_module
import re
import warnings
from typing import Any, Dict, List, Optional, Tuple

from .errors import PlanSyntaxError
from .plan import MAX_NESTING

__all__ = ["ArgumentError", "ArgumentScanner", "read_arguments", "read_simple_call", "small_int", "MAX_DIGITS"]

_MAX_NESTING = MAX_NESTING  # brackets deeper than this are refused (ast's own limit is 200)
# Numbers: an int may have at most this many decimal digits (the interpreter's own limit for str(), so
# every accepted value can be printed), whatever base it is written in; a float may not overflow.
MAX_DIGITS = 4300
_TOO_MANY_DIGITS = f"a number has more than {MAX_DIGITS:,} decimal digits (write a huge value as a string)"
_INT_LIMIT = 10 ** MAX_DIGITS
_INT_SAFE_BITS = int(MAX_DIGITS * 3.32)  # below this many bits an int has fewer than MAX_DIGITS digits
_INFINITY = float("inf")
# A decimal int of more digits than MAX_DIGITS (underscores between them allowed, as Python does); not
# the digits of a 0b/0o/0x literal or after a decimal point (those are checked by value after parsing).
_LONG_DIGITS = re.compile(r"(?<![\w.])(?!0[xXoObB])(?:[0-9]_?){%d}" % (MAX_DIGITS + 1))
_CLOSER = {"(": ")", "[": "]", "{": "}"}
# Outside strings: a run of characters that need no attention.
_PLAIN_CODE = re.compile(r"[^'\"()\[\]{}$#]+")
# Inside a string opened by ' or ": a run up to the next backslash, quote character or newline.
_STRING_BODY = {"'": re.compile(r"[^\\'\n]+"), '"': re.compile(r'[^\\"\n]+')}
_BARE_REFERENCE = re.compile(r"\$(?:\{([0-9]+)\}|([0-9]+))")


class ArgumentError(Exception):
    """The argument text cannot be scanned (internal; becomes a PlanSyntaxError with line and task)."""


class ArgumentScanner:
    """Scans a call's argument text one line at a time, keeping bracket and string state between lines.

    It copies the text to ``source`` with every bare ``$N`` / ``${N}`` (one outside string literals)
    replaced by the string literal ``"$N"``, and to ``raw`` as written; both stop before the ``)`` that
    closes the call. ``quote`` is the quote of the string left open at the end of a line, or None.
    """

    def __init__(self) -> None:
        self.brackets: List[str] = ["("]
        self.quote: Optional[str] = None
        self.source: List[str] = []
        self.raw: List[str] = []

    @property
    def closer(self) -> str:
        """The bracket that closes the innermost one still open (``)`` for the call itself)."""
        return _CLOSER[self.brackets[-1]]

    def feed(self, segment: str) -> Optional[int]:
        """Scan ``segment`` (one line, ending in a newline).

        Returns the offset just past the closing ``)`` of the call, or None if the call is still open.
        Raises ``ArgumentError`` for a bracket that closes the wrong bracket, an unterminated
        one-quote string, a ``$`` without a task number, a comment, or too deep nesting.
        """
        out: List[str] = []
        pos = 0
        while pos < len(segment):
            if self.quote is not None:
                pos = self._string_part(segment, pos, out)
                continue
            plain = _PLAIN_CODE.match(segment, pos)
            if plain:
                if plain.end() - pos > MAX_DIGITS and _LONG_DIGITS.search(plain.group()):
                    raise ArgumentError(_TOO_MANY_DIGITS)  # before ast spends time converting it
                out.append(plain.group())
                pos = plain.end()
                continue
            char = segment[pos]
            if char in "'\"":
                self.quote = char * 3 if segment.startswith(char * 3, pos) else char
                out.append(self.quote)
                pos += len(self.quote)
            elif char in "([{":
                if len(self.brackets) >= _MAX_NESTING:
                    raise ArgumentError(f"arguments nest deeper than {_MAX_NESTING} brackets")
                self.brackets.append(char)
                out.append(char)
                pos += 1
            elif char in ")]}":
                opener = self.brackets.pop()
                if _CLOSER[opener] != char:
                    raise ArgumentError(f"{char!r} does not close {opener!r}")
                if not self.brackets:
                    self._keep(segment[:pos], out)
                    return pos + 1
                out.append(char)
                pos += 1
            else:
                pos = self._reference_or_comment(segment, pos, out)
        self._keep(segment, out)
        return None

    def _string_part(self, segment: str, pos: int, out: List[str]) -> int:
        """Scan inside the open string from ``pos``; returns the next position."""
        quote = self.quote or ""
        body = _STRING_BODY[quote[0]].match(segment, pos)
        if body:
            out.append(body.group())
            return body.end()
        char = segment[pos]
        if char == "\\":  # an escape, also in raw strings: the next character never ends the string
            out.append(segment[pos:pos + 2])
            return pos + 2
        if char == "\n" and len(quote) == 1:
            raise ArgumentError("a string is not closed at the end of the line")
        if segment.startswith(quote, pos):
            self.quote = None
            out.append(quote)
            return pos + len(quote)
        out.append(char)
        return pos + 1

    @staticmethod
    def _reference_or_comment(segment: str, pos: int, out: List[str]) -> int:
        """Handle a ``$`` or ``#`` outside strings; returns the next position."""
        if segment[pos] == "#":
            raise ArgumentError("comments ('#') are not allowed in arguments")
        reference = _BARE_REFERENCE.match(segment, pos)
        if reference is None:
            raise ArgumentError("'$' outside a string must be followed by a task number, as in $1")
        out.append('"$' + (reference.group(1) or reference.group(2)) + '"')
        return reference.end()

    def _keep(self, raw: str, out: List[str]) -> None:
        self.raw.append(raw)
        self.source.append("".join(out))


class _NotLiteral(Exception):
    """An argument node that is not a literal (internal). ``what`` describes it."""

    def __init__(self, node: ast.AST, what: str, refused: bool = False):
        super().__init__(what)
        self.node = node
        self.what = what
        self.refused = refused  # a literal, but out of bounds: ``what`` is the whole message


_NODE_NAMES = {
    ast.Call: "a call", ast.Attribute: "an attribute", ast.Subscript: "a subscript",
    ast.JoinedStr: "an f-string", ast.Lambda: "a lambda", ast.BinOp: "an operator",
    ast.BoolOp: "an operator", ast.Compare: "a comparison", ast.UnaryOp: "an operator",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression", ast.Starred: "a starred argument ('*')",
    ast.Set: "a set", ast.IfExp: "a conditional expression", ast.NamedExpr: "an assignment (':=')",
    ast.Await: "an await", ast.Yield: "a yield", ast.YieldFrom: "a yield",
}


def _describe(node: ast.AST) -> str:
    """A short description of a non-literal node, for error messages."""
    if isinstance(node, ast.Name):
        return f"a name {node.id!r}"
    if isinstance(node, ast.Constant):
        kind = {bytes: "a bytes literal", complex: "a complex number"}.get(type(node.value))
        return kind or f"{node.value!r}"
    return _NODE_NAMES.get(type(node), f"a {type(node).__name__} expression")


def _literal(node: ast.AST) -> Any:
    """The value of a literal node. Raises ``_NotLiteral`` for anything else.

    Recursion depth is bounded by the scanner's bracket limit.
    """
    if isinstance(node, ast.Constant):
        value = node.value
        kind = type(value)
        if kind is int or kind is float:
            return _number(value, node)
        if value is None or kind is str or kind is bool:
            return value
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = node.operand
        if isinstance(operand, ast.Constant) and type(operand.value) in (int, float):
            value = _number(operand.value, operand)
            return -value if isinstance(node.op, ast.USub) else value
    elif isinstance(node, ast.List):
        return [_literal(item) for item in node.elts]
    elif isinstance(node, ast.Tuple):
        return tuple(_literal(item) for item in node.elts)
    elif isinstance(node, ast.Dict):
        return {_dict_key(key, node): _literal(value) for key, value in zip(node.keys, node.values)}
    raise _NotLiteral(node, _describe(node))


def _number(value: Any, node: ast.AST) -> Any:
    """A number literal within bounds. Raises ``_NotLiteral`` for an int past ``MAX_DIGITS`` digits (in
    any base: ``0x`` and 5,000 digits too) or a float that overflowed to infinity (``1e99999``)."""
    if type(value) is int:
        if value.bit_length() > _INT_SAFE_BITS and value >= _INT_LIMIT:
            raise _NotLiteral(node, _TOO_MANY_DIGITS, refused=True)
    elif value == _INFINITY:
        raise _NotLiteral(node, "a number too large for a float (it overflows to infinity)", refused=True)
    return value


def _dict_key(node: Optional[ast.AST], parent: ast.AST) -> Any:
    """A dict key: a str, number, bool or None literal. Raises ``_NotLiteral`` otherwise."""
    if node is None:
        raise _NotLiteral(parent, "'**' unpacking")
    if isinstance(node, (ast.List, ast.Tuple, ast.Dict)):
        raise _NotLiteral(node, "a container as a dict key")
    return _literal(node)


def read_arguments(source: str, line: int, idx: str) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """The ``(args, kwargs)`` written in ``source`` (a call's argument text, references quoted).

    ``line`` is the plan line the text starts on. Raises ``PlanSyntaxError`` naming the line and what was
    found when the text is not a comma-separated list of literal (keyword) arguments.
    """
    def fail(message: str, at: int = 1) -> PlanSyntaxError:
        return PlanSyntaxError(f"line {line + at - 1}: task {idx}: {message}", line=line + at - 1,
                               task=small_int(idx), text=source)

    if "\x00" in source:  # ast refuses it, in words that differ between Python versions
        raise fail("a NUL character cannot appear in a plan (inside a string, write it as '\\x00')")
    try:
        # ast warns about the plan's text (SyntaxWarning for "\d"); that is no warning about our code.
        # catch_warnings swaps the process-wide filters for the moment of the parse.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(f"_({source})", mode="eval")
    except SyntaxError as error:
        raise fail(f"the arguments are not valid: {error.msg}", error.lineno or 1) from None
    except UnicodeEncodeError as error:  # a lone surrogate, e.g. invalid UTF-8 read with surrogateescape
        raise fail(f"the text holds {error.object[error.start]!r}, which is not a Unicode character (a lone "
                   f"surrogate: is the plan invalid UTF-8?)") from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise fail(f"the arguments cannot be read: {type(error).__name__}") from None
    call = tree.body
    if not isinstance(call, ast.Call):  # cannot happen: the scanner checked the brackets
        raise fail("the arguments cannot be read")
    try:
        args = tuple(_literal(node) for node in call.args)
        kwargs: Dict[str, Any] = {}
        for keyword in call.keywords:
            if keyword.arg is None:
                raise _NotLiteral(keyword.value, "'**' unpacking")
            if keyword.arg in kwargs:
                raise fail(f"keyword argument {keyword.arg!r} is given twice", keyword.value.lineno)
            kwargs[keyword.arg] = _literal(keyword.value)
    except _NotLiteral as error:
        message = error.what if error.refused else f"arguments must be literals, found {error.what}"
        raise fail(message, getattr(error.node, "lineno", 1)) from None
    return args, kwargs


def small_int(digits: str) -> Optional[int]:
    """``int(digits)``, or None when it has too many digits to convert."""
    return int(digits) if len(digits) <= 18 else None


# -- the fast path: one-line calls of plain literals, read without ast -------------------------------
#
# Most plan lines are calls like ``search("population of Tokyo", n=3)`` or ``combine([$1, $2])``. They
# are read here by one token pattern: strings without escapes, small ints, plain decimal floats, True,
# False, None, bare references, flat or nested lists, keyword names. Anything else -- an escape, a
# dict, a tuple, an exponent, a continuation line, a comment, text after the call -- returns None and
# the line takes the general path (the scanner and ``read_arguments``), which is the definition: where
# this path answers, it gives exactly what that one would (a test compares them).

_FAST_TOKEN = re.compile(r"""[ \t]*(?:
    "([^"\\\x00-\x08\x0a-\x1f\ud800-\udfff]*)"(?![ \t]*['"])   # 1: a string ("..."), not concatenated
  | '([^'\\\x00-\x08\x0a-\x1f\ud800-\udfff]*)'(?![ \t]*['"])   # 2: a string ('...')
  | (-?(?:[1-9][0-9]{0,17}|0))(?![0-9A-Za-z_.])                   # 3: an int
  | (-?[0-9]{1,300}\.[0-9]{1,300})(?![0-9A-Za-z_.])                # 4: a float
  | ([A-Za-z_][A-Za-z0-9_]*)(?:[ \t]*(=)(?!=))?                    # 5: a name; 6: '=' after a keyword
  | \$(?:\{([0-9]{1,18})\}|([0-9]{1,18}))(?![0-9A-Za-z_.{}])      # 7, 8: a bare reference
  | ([\[\],)])                                                       # 9: punctuation
)""", re.VERBOSE)
_NAMED = {"True": True, "False": False, "None": None}
_END_OF_LINE = re.compile(r"[ \t]*")


class _NotSimple(Exception):
    """The call is not one the fast path reads: it takes the general path (internal)."""


def read_simple_call(
    line: str, pos: int
) -> Optional[Tuple[Tuple[Any, ...], Dict[str, Any], List[str], List[int]]]:
    """Read the call whose arguments start at ``line[pos]`` (just past its ``(``) when it is simple.

    Returns ``(args, kwargs, dollars, bare)``: ``dollars`` every quoted string value containing a
    ``$``, ``bare`` the task number of every bare reference (its value is the string ``"$N"``); or None
    when the line needs the general path."""
    args: List[Any] = []
    kwargs: Dict[str, Any] = {}
    dollars: List[str] = []
    bare: List[int] = []
    stack: List[List[Any]] = []  # the lists open around the current value
    keyword: Optional[str] = None  # the keyword whose value comes next
    expect_value = True  # False: after a value, a ',' or a closing bracket comes next
    try:
        while True:
            token = _FAST_TOKEN.match(line, pos)
            if token is None:
                return None
            pos = token.end()
            kind = token.lastindex
            if expect_value and kind != 9:
                if kind == 6:  # 'name =': a keyword argument starts
                    name = token.group(5)
                    if stack or keyword is not None or name in kwargs or keyword_module.iskeyword(name):
                        return None
                    keyword = name
                    continue
                keyword = _place(_token_value(token, kind, dollars, bare), stack, args, kwargs, keyword)
                expect_value = False
                continue
            mark = token.group(9)
            if mark == "[" and expect_value:
                if len(stack) + 2 > _MAX_NESTING:
                    return None
                stack.append([])
            elif mark == "," and not expect_value:
                expect_value = True
            elif mark == "]" and stack:  # after a value, after '[' or after a trailing ','
                keyword = _place(stack.pop(), stack, args, kwargs, keyword)
                expect_value = False
            elif mark == ")" and not stack and keyword is None:
                if _END_OF_LINE.fullmatch(line, pos) is None:
                    return None
                return tuple(args), kwargs, dollars, bare
            else:
                return None
    except _NotSimple:
        return None


def _token_value(token: "re.Match[str]", kind: int, dollars: List[str], bare: List[int]) -> Any:
    """The value a fast-path token stands for; quoted strings holding a '$' are added to ``dollars``,
    a bare reference's number (at most 18 digits, as the token allows) to ``bare``."""
    if kind == 1 or kind == 2:
        text = token.group(kind)
        if "$" in text:
            dollars.append(text)
        return text
    if kind == 3:
        return int(token.group(3))
    if kind == 4:
        return float(token.group(4))
    if kind == 5:
        name = token.group(5)
        if name not in _NAMED:
            raise _NotSimple(name)  # a name is no literal: the general path says so
        return _NAMED[name]
    digits = token.group(7) or token.group(8)
    bare.append(int(digits))
    return "$" + digits


def _place(value: Any, stack: List[List[Any]], args: List[Any], kwargs: Dict[str, Any],
           keyword: Optional[str]) -> Optional[str]:
    """Put a value where it belongs: the open list, the pending keyword, or the positional arguments.

    Returns the keyword still pending afterwards (``keyword`` inside a list, else None)."""
    if stack:
        stack[-1].append(value)
        return keyword
    if keyword is not None:
        kwargs[keyword] = value
    elif kwargs:
        raise _NotSimple("a positional argument after a keyword one")
    else:
        args.append(value)
    return None
