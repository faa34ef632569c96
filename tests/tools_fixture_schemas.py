"""Tools annotated with every kind schemas() maps, for test_schemas.py (resolved annotations)."""

import dataclasses
import enum
from typing import (Annotated, Any, Dict, FrozenSet, Iterable, List, Literal, Mapping, NamedTuple, NewType,
                    Optional, Sequence, Set, Tuple, TypedDict, Union)

UserId = NewType("UserId", int)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Shape(enum.Enum):
    """Values JSON cannot say: the member names are the schema's enum."""
    SQUARE = (1, 1)
    LINE = (1, 0)


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0
    label: Optional[str] = None
    tags: List[str] = dataclasses.field(default_factory=list)
    cache: Dict[str, int] = dataclasses.field(default_factory=dict, init=False)


@dataclasses.dataclass
class Node:
    """Recursive: a node holds its children."""
    name: str
    children: List["Node"] = dataclasses.field(default_factory=list)


class Movie(TypedDict):
    title: str
    year: int
    rating: Optional[float]


class PartialMovie(TypedDict, total=False):
    title: str
    cast: List[Movie]


class Pair(NamedTuple):
    left: int
    right: str


def containers(a: list, b: tuple, c: Tuple[int, str], d: list[int], e: tuple[str, ...], f: dict[str, int],
               g: List[List[float]], h: Set[str], i: FrozenSet[int], j: Sequence[Tuple[int, int]],
               k: Iterable[str], m: Mapping[str, List[int]], n: dict, o: Tuple[()], p: set) -> None:
    """Containers of every kind."""


def choices(color: Color, level: Level, shape: Shape, mode: Literal["fast", "slow"] = "fast",
            code: Literal[1, 2, 3] = 1, mixed: Literal["a", 1, None] = None,
            by_enum: Literal[Color.RED] = Color.RED) -> None:
    """Enums and literals."""


def unions(a: Optional[int], b: Union[int, str], c: int | str | None, d: Optional[List[str]] = None,
           e: Union[int, float] = 1, f: Optional[Any] = None, user: UserId = UserId(1)) -> None:
    """Unions and new types."""


def records(point: Point, node: Node, movie: Movie, partial: PartialMovie, pair: Pair,
            points: List[Point], by_name: Dict[str, Movie], maybe: Optional[Point] = None) -> None:
    """Dataclasses, TypedDicts and NamedTuples, nested."""


def described(query: Annotated[str, "What to look for."], limit: Annotated[int, "How many.", 3] = 5,
              raw: bytes = b"", **options: float) -> None:
    """Annotated descriptions."""



try:
    from typing import NotRequired
except ImportError:  # Python 3.10: no per-key marks; every key of Review is required there
    NotRequired = None


class Review(TypedDict):
    """Keys marked one by one (Python 3.11's NotRequired)."""
    text: str
    stars: NotRequired[int] if NotRequired else int


def reviewed(review: Review) -> None:
    """A TypedDict with a NotRequired key."""
