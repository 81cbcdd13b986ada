"""Parsing one TOML value, and collecting every problem as `KEY: problem`: the pieces
config.py and routeconfig.py share (docs/reference.md#configuration)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import field
from typing import Any, TypeVar

from gateway.units import parse_duration

T = TypeVar("T")


Parser = Callable[[Any], Any]


def parsed(default: T, parse: Parser, doc: str) -> Any:
    """A dataclass field that knows how to parse its TOML value and documents itself."""
    return field(default=default, metadata={"parse": parse, "doc": doc})


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def list_of(parse: Callable[[str], T]) -> Callable[[Any], tuple[T, ...]]:
    def parse_list(value: Any) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        return tuple(parse(string(item)) for item in value)

    return parse_list


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a whole number >= 1, got {value!r}")
    return value


def whole_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return value


def positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be longer than 0s")
    return seconds


def one_of(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{value!r} is not one of {list(choices)}")
    return value


class Problems:
    """Collects `KEY: problem` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, key: str, problem: str) -> None:
        self.lines.append(f"{key}: {problem}")

    def unknown(self, key: str, name: str, known: tuple[str, ...]) -> None:
        hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
        self.add(key, f"unknown key{suggestion}")
