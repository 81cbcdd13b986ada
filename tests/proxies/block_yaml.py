"""A strict reader for the small part of YAML that Traefik's dynamic configurations use.

The project has no YAML library, and the README's Traefik configuration needs only block
mappings and sequences, `[a, b]` flow sequences and scalars. Whatever lies outside that
subset (tabs, anchors, tags, block scalars, flow mappings, duplicate keys, odd indentation)
is refused with its line number instead of being guessed at, so a document this reader
accepts is well-formed YAML with the same meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_INTEGER = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_BOOLEANS = {"true": True, "True": True, "TRUE": True,
             "false": False, "False": False, "FALSE": False}
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_RESERVED_START = frozenset("&*!|>%@`{}]#,?")
_KEY = re.compile(r'("(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|[^\s"\'][^:]*?)\s*:(?:\s+|$)')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t"}


class YamlSubsetError(ValueError):
    """The text is not in the subset this reader understands."""


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    indent: int
    text: str  # without indentation or comment


def load(text: str) -> Any:
    """The document's value: dicts, lists, str, int, float, bool and None."""
    lines = _lines(text)
    if not lines:
        return None
    value, end = _block(lines, 0, lines[0].indent)
    if end != len(lines):
        raise YamlSubsetError(f"line {lines[end].number}: unexpected indentation")
    return value


def _lines(text: str) -> list[_Line]:
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        body = raw.lstrip(" ")
        if body.startswith("\t"):
            raise YamlSubsetError(f"line {number}: a tab in the indentation")
        content = _without_comment(body, number).rstrip()
        if content:
            lines.append(_Line(number, len(raw) - len(body), content))
    return lines


def _without_comment(text: str, number: int) -> str:
    """`text` up to a `#` that starts a comment (at the start or after a space, unquoted)."""
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] == " "):
            return text[:index]
        index += 1
    if quote:
        raise YamlSubsetError(f"line {number}: an unterminated {quote} string")
    return text


def _block(lines: list[_Line], start: int, indent: int) -> tuple[Any, int]:
    if _is_item(lines[start].text):
        return _sequence(lines, start, indent)
    return _mapping(lines, start, indent)


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _mapping(lines: list[_Line], start: int, indent: int) -> tuple[dict[str, Any], int]:
    found: dict[str, Any] = {}
    index = start
    while index < len(lines) and lines[index].indent == indent and not _is_item(lines[index].text):
        line = lines[index]
        pair = _key_and_rest(line.text, line.number)
        if pair is None:
            raise YamlSubsetError(f"line {line.number}: expected `key: value`: {line.text!r}")
        key, rest = pair
        if key in found:
            raise YamlSubsetError(f"line {line.number}: duplicate key {key!r}")
        index += 1
        if rest:
            found[key] = _scalar_or_flow(rest, line.number)
        elif index < len(lines) and lines[index].indent > indent:
            found[key], index = _block(lines, index, lines[index].indent)
        elif index < len(lines) and lines[index].indent == indent and _is_item(lines[index].text):
            found[key], index = _sequence(lines, index, indent)
        else:
            found[key] = None
    if index < len(lines) and lines[index].indent > indent:
        raise YamlSubsetError(f"line {lines[index].number}: unexpected indentation")
    return found, index


def _sequence(lines: list[_Line], start: int, indent: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    index = start
    while index < len(lines) and lines[index].indent == indent and _is_item(lines[index].text):
        line = lines[index]
        rest = line.text[1:].lstrip(" ")
        if not rest:
            index += 1
            if index < len(lines) and lines[index].indent > indent:
                item, index = _block(lines, index, lines[index].indent)
            else:
                item = None
        elif _key_and_rest(rest, line.number) is not None:
            # `- key: value` opens a mapping whose keys line up after the dash.
            inner = indent + len(line.text) - len(rest)
            lines[index] = _Line(line.number, inner, rest)
            item, index = _mapping(lines, index, inner)
        else:
            item = _scalar_or_flow(rest, line.number)
            index += 1
        items.append(item)
    return items, index


def _key_and_rest(text: str, number: int) -> tuple[str, str] | None:
    """(key, rest) of `key: rest`, or None when `text` is no mapping entry."""
    match = _KEY.match(text)
    if match is None:
        return None
    key = _scalar(match.group(1), number)
    if not isinstance(key, str):
        raise YamlSubsetError(f"line {number}: a key that is not a string: {key!r}")
    return key, text[match.end():]


def _scalar_or_flow(text: str, number: int) -> Any:
    if text.startswith("["):
        if not text.endswith("]"):
            raise YamlSubsetError(f"line {number}: a flow sequence must end on its line")
        inner = text[1:-1].strip()
        return [_scalar(part.strip(), number) for part in _split_commas(inner, number)]
    return _scalar(text, number)


def _split_commas(text: str, number: int) -> list[str]:
    if not text:
        return []
    parts = re.findall(r'\s*("(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|[^,"\'\[\]{}]+)\s*(?:,|$)',
                       text)
    if ",".join(parts).replace(" ", "") != text.replace(" ", ""):
        raise YamlSubsetError(f"line {number}: a flow sequence beyond plain items: {text!r}")
    return parts


def _scalar(text: str, number: int) -> Any:
    if text.startswith('"'):
        return _double_quoted(text, number)
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'"):
            raise YamlSubsetError(f"line {number}: text after a quoted string: {text!r}")
        return text[1:-1].replace("''", "'")
    if (text[:1] in _RESERVED_START or text.startswith(("- ", "[")) or ": " in text
            or text.endswith(":")):
        raise YamlSubsetError(f"line {number}: not a plain scalar this reader knows: {text!r}")
    if text in _NULLS:
        return None
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    if _INTEGER.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _double_quoted(text: str, number: int) -> str:
    value: list[str] = []
    index = 1
    while index < len(text):
        char = text[index]
        if char == '"':
            if index != len(text) - 1:
                raise YamlSubsetError(f"line {number}: text after a quoted string: {text!r}")
            return "".join(value)
        if char == "\\":
            escape = text[index + 1:index + 2]
            if escape not in _ESCAPES:
                raise YamlSubsetError(f"line {number}: an escape this reader does not know")
            value.append(_ESCAPES[escape])
            index += 2
            continue
        value.append(char)
        index += 1
    raise YamlSubsetError(f"line {number}: an unterminated string: {text!r}")
