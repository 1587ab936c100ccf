"""Live launch progress on the console, on the line under Robot's own output, in a terminal only.

Robot's verbose console keeps the running test's name (and its keyword
markers) on the current line and finishes it with ``| PASS |``. So the progress
never touches that line: it is drawn on the line below and the cursor is put
back where Robot left it (VT100 save/restore cursor, index/reverse index, which
scroll when Robot's line is the terminal's last), and that line is erased when
the wait ends. Nothing is written when stdout is not a terminal or ``CI`` is
set, so logs of CI runs and redirected output stay exactly Robot's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TextIO

from stampede.progress import ProgressMeter, ProgressSource

SHOW_AFTER_SECONDS = 1.0  # launches shorter than this show nothing, so quick tests do not flicker
REFRESH_SECONDS = 0.5
_ENSURE_LINE_BELOW = "\x1bD\x1bM"  # index down (scrolling if at the bottom), then back up: same column
_SAVE, _RESTORE = "\x1b7", "\x1b8"
_TO_LINE_BELOW = "\x1bD\r"
_ERASE_LINE_END = "\x1b[K"
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def console_is_interactive(stream: TextIO | None, environ: Mapping[str, str] = os.environ) -> bool:
    """True when ``stream`` is a terminal and no CI is running (``CI`` unset, empty or false)."""
    if stream is None or environ.get("CI", "").strip().lower() not in _FALSE_WORDS:
        return False
    try:
        return stream.isatty() and environ.get("TERM") != "dumb"
    except ValueError:  # a closed stream
        return False


class ConsoleProgress:
    """Draws one launch's progress under Robot's console line; ``update()`` is cheap to call often."""

    def __init__(
        self,
        source: ProgressSource,
        label: str,
        stream: TextIO | None = None,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = sys.__stdout__ if stream is None else stream
        self.enabled = console_is_interactive(self._stream, environ)
        self._meter = ProgressMeter(source, clock)
        self._label = label
        self._clock = clock
        self._next_draw = clock() + SHOW_AFTER_SECONDS
        self._drawn = False

    def update(self) -> None:
        if not self.enabled or self._clock() < self._next_draw:
            return
        self._next_draw = self._clock() + REFRESH_SECONDS
        line = f"  {self._label}: {self._meter.sample().describe()}"
        width = shutil.get_terminal_size().columns - 1  # never wrap: the line must stay one line
        self._write(_ENSURE_LINE_BELOW + _SAVE + _TO_LINE_BELOW + line[:width] + _ERASE_LINE_END + _RESTORE)
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self._write(_SAVE + _TO_LINE_BELOW + _ERASE_LINE_END + _RESTORE)
            self._drawn = False

    def _write(self, text: str) -> None:
        if self._stream is None:  # no console at all (sys.__stdout__ is None under pythonw and some daemons)
            self.enabled = False
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a closed or broken console: stop drawing, never fail the launch
            self.enabled = False


@contextlib.contextmanager
def showing_progress(source: ProgressSource, label: str, stream: TextIO | None = None) -> Iterator[None]:
    """While the block waits for a launch, refresh its progress (from ``source``) in a helper thread; erase it after."""
    progress = ConsoleProgress(source, label, stream)
    if not progress.enabled:
        yield
        return
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(REFRESH_SECONDS / 5):
            progress.update()

    ticker = threading.Thread(target=refresh, name="stampede-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join(timeout=2.0)
        progress.clear()
