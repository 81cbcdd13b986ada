"""The batching access-log handler: whole lines, in pieces a pipe writes atomically."""

from __future__ import annotations

import io
import json

import pytest

from gateway.accesslog import PIECE, BatchingHandler, json_line


class Recording(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_batches_are_written_in_whole_lines_below_pipe_buf() -> None:
    stream = Recording()
    handler = BatchingHandler(stream)
    lines = [f"GET /page/{n} 200 1024 1.0ms 127.0.0.1 " + "x" * 80 for n in range(200)]
    for line in lines:
        handler.line(line)
    handler.flush()

    assert len(stream.writes) > 1
    assert all(len(piece.encode()) <= PIECE and piece.endswith("\n") for piece in stream.writes)
    written = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in written] == lines
    assert all(" INFO gateway.access: " in line for line in written)


@pytest.mark.parametrize("value", [
    "plain", 'quote " and \\ backslash', "caf\u00e9 \u2028 \U0001f600", "\x00\x1f", "", None,
    0, -7, 10**30, 1.5, -0.0, 1e300, 2.5e-7, float("nan"), float("inf"), True, False,
    [1, "a", None], {"k": [True]},
])
def test_json_line_writes_what_json_dumps_would(value: object) -> None:
    """json_line is built by hand for speed; it must be json.dumps' output, byte for byte."""
    fields = {"message": "GET / 200", "value": value, "status": 200}
    line = json_line(fields)
    stamp = json.loads(line)["time"]
    expected = json.dumps({"time": stamp, "level": "INFO", "logger": "gateway.access",
                           **fields}, ensure_ascii=True, separators=(",", ":"))
    assert line == expected
