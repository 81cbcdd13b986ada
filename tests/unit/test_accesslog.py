"""The batching access-log handler: whole lines, in pieces a pipe writes atomically."""

from __future__ import annotations

import io

from gateway.accesslog import PIECE, BatchingHandler


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
