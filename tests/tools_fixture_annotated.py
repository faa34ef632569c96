"""Richly annotated tools for the describe()/schemas() tests (string annotations, as with PEP 563)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Mapping, Optional, Sequence

if TYPE_CHECKING:
    from decimal import Decimal  # never imported at run time: its annotation cannot be resolved


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def search(query: str, tags: list[str], limit: int = 10, *scopes: str, ratio: float = 0.5,
           exact: bool = False, lang: Literal["en", "de"] = "en", since: Optional[int] = None,
           until: int | None = None, ids: Sequence[int] = (), pair: tuple[int, ...] = (1, 2),
           options: Mapping[str, Any] = {}, anything: Any = 0, raw=MISSING,
           **extra: str) -> list[dict[str, Any]]:
    """Search the web
    for a query.

    Longer text that is not part of the description.

    Args:
        query: What to look
            for.
        limit (int): How many results.
        ghost: Not a parameter.

    Returns:
        The hits.
    """
    return []


def price(amount: Decimal, currency: str = "EUR") -> str:
    """Format a price."""
    return f"{amount} {currency}"
