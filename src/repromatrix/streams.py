"""Standard error that never stops a run; standard output whose reader may leave.

Progress lines and warnings go to standard error. When it cannot take them (`2>/dev/full`,
a log file on a full disk, a closed pipe), a failed write ended the run half-way with an
internal error, and exit 1, which is `--fail-on`'s code. What cannot be said is dropped:
the stream is pointed at /dev/null after its first failure and the work goes on; the exit
status still says how the run ended.
"""

from __future__ import annotations

import os
from typing import Any, TextIO, cast


class _Lossy:
    def __init__(self, stream: TextIO, lost: type[OSError] = OSError) -> None:
        self._stream = stream
        self._lost = lost

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except self._lost:
            self._mute()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except self._lost:
            self._mute()

    def _mute(self) -> None:
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
            self._stream.flush()  # what was buffered now goes to /dev/null
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def lossy_stderr(stream: TextIO) -> TextIO:
    """`stream` (standard error), writing what it can and dropping the rest, silently."""
    return stream if isinstance(stream, _Lossy) else cast(TextIO, _Lossy(stream))


def reader_may_leave(stream: TextIO) -> TextIO:
    """`stream` (standard output), whose reader may leave (`bisect | head -1`): what it
    would have read goes to /dev/null and the command carries on to its end, its records,
    its --markdown and its exit status (a BrokenPipeError stopped a bisection after its
    first round, with exit 0 and no answer anywhere). Any other failure (`>/dev/full`)
    still raises: the command says so (exit 10)."""
    if isinstance(stream, _Lossy):
        return stream
    return cast(TextIO, _Lossy(stream, lost=BrokenPipeError))
