"""Progress of one import: a log line at a steady interval, and a hook.

The operator CLI (``cinder-rbd-bootcache warm``) passes ``on_update`` to
draw its progress bar from the same counts the log shows.
"""

from __future__ import annotations

import time
from typing import Callable
from typing import Optional

from oslo_log import log as logging
from oslo_utils import units

LOG = logging.getLogger(__name__)


def human(count: float) -> str:
    """Bytes in IEC units, as operators read them (``1.5 GiB``)."""
    for unit, size in (('GiB', units.Gi), ('MiB', units.Mi),
                       ('KiB', units.Ki)):
        if count >= size:
            return '%.1f %s' % (count / size, unit)
    return '%d B' % count


class ImportProgress:
    """Counts bytes received for ``image_id`` into ``target``."""

    def __init__(self, image_id: str, target: str, total: Optional[int],
                 interval: float,
                 on_update: Optional[
                     Callable[['ImportProgress'], None]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.image_id = image_id
        self.target = target
        self.total = total
        self.done = 0
        self._interval = interval
        self._on_update = on_update
        self._clock = clock
        self.started = clock()
        self._last_log = self.started

    @property
    def elapsed(self) -> float:
        return max(self._clock() - self.started, 1e-9)

    @property
    def rate(self) -> float:
        """Bytes per second since the start."""
        return self.done / self.elapsed

    @property
    def percent(self) -> Optional[float]:
        if not self.total:
            return None
        return 100.0 * self.done / self.total

    def advance(self, count: int) -> None:
        self.done += count
        if self._on_update:
            self._on_update(self)
        now = self._clock()
        if now - self._last_log >= self._interval:
            self._last_log = now
            LOG.info('Importing image %(image)s into %(target)s: %(done)s of '
                     '%(total)s (%(pct)s) at %(rate)s/s.',
                     {'image': self.image_id, 'target': self.target,
                      'done': human(self.done),
                      'total': human(self.total) if self.total else '?',
                      'pct': ('%.0f%%' % self.percent
                              if self.percent is not None else '?'),
                      'rate': human(self.rate)})
