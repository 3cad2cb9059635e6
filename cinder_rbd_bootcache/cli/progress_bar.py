"""``warm``'s progress display, fed by the import pipeline's own counts.

On a terminal: one line redrawn in place (bar, bytes, rate, ETA).  Not on
a terminal (logs, CI, pipes): a plain line every few seconds.  Written to
stderr, so ``-f json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any
from typing import Callable
from typing import Optional
from typing import TextIO

from cinder_rbd_bootcache.image_import import progress

WIDTH = 30


def render(done: int, total: Optional[int], rate: float,
           label: str) -> str:
    """One progress line: ``label [####----] 45% 460.0 MiB of 1.0 GiB,
    500.0 MiB/s, ETA 1s``."""
    if total:
        fraction = min(done / total, 1.0)
        filled = int(WIDTH * fraction)
        eta = (total - done) / rate if rate > 0 else float('inf')
        return '%s [%s%s] %3d%% %s of %s, %s/s, ETA %s' % (
            label, '#' * filled, '-' * (WIDTH - filled), fraction * 100,
            progress.human(done), progress.human(total),
            progress.human(rate),
            '%ds' % eta if eta != float('inf') else '?')
    return '%s %s, %s/s' % (label, progress.human(done),
                            progress.human(rate))


class ProgressBar:
    """``on_update`` for ``ImagePipeline(on_progress=...)``."""

    def __init__(self, label: str, stream: TextIO = sys.stderr,
                 tty: Optional[bool] = None, plain_interval: float = 5.0,
                 redraw_interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._interval = redraw_interval if self._tty else plain_interval
        self._clock = clock
        self._last = float('-inf')
        self._width = 0

    def __call__(self, tracker: Any) -> None:
        now = self._clock()
        finished = bool(tracker.total) and tracker.done >= tracker.total
        if now - self._last < self._interval and not finished:
            return
        self._last = now
        line = render(tracker.done, tracker.total, tracker.rate, self.label)
        if self._tty:
            self._stream.write('\r' + line.ljust(self._width))
            self._width = len(line)
        else:
            self._stream.write(line + '\n')
        self._stream.flush()

    def close(self) -> None:
        """End the redrawn line, so what follows starts on its own."""
        if self._tty and self._width:
            self._stream.write('\n')
            self._stream.flush()
            self._width = 0
