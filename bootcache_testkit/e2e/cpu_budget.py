"""What the machine's CPUs did during a timed window of the e2e bench.

Everything of the end-to-end environment shares one small machine: the
services, Ceph, MariaDB, RabbitMQ and the bench's own client.  A create
that is bound by CPU cannot finish before the CPU-seconds it needs are
spent, whatever the driver does, so a ratio that misses its goal means
little without them.  Each sample therefore records, for its timed
window, the machine's busy CPU-seconds (``/proc/stat``) and those of each
part: a supervised service is its session (the service and every worker
or child it started; a child that exited is counted through its parent's
``cutime``), the kernel's threads are one part, anything else is grouped
by its command name (``ceph-osd``, ``ceph-mon``, ...).

Read from ``/proc`` (Linux only, like the rest of the environment);
psutil would do the same with one more dependency and no grouping by
session.
"""

from __future__ import annotations

import collections
import os
from typing import Mapping

#: Key of the machine's busy CPU-seconds (every process, the kernel too).
MACHINE = '(machine)'
#: Key of the kernel's own threads (session 0).
KERNEL = '(kernel threads)'
_TICKS = os.sysconf('SC_CLK_TCK')


def machine_busy() -> float:
    """Busy CPU-seconds of all CPUs since boot (not idle, not iowait)."""
    with open('/proc/stat') as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICKS


def by_part(sessions: Mapping[int, str]) -> dict[str, float]:
    """CPU-seconds so far of each part: the processes of a session id in
    ``sessions`` count for its name, any other process for its command
    name; plus :data:`MACHINE`."""
    totals: collections.Counter = collections.Counter()
    for entry in os.scandir('/proc'):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, 'stat')) as f:
                stat = f.read()
        except OSError:  # it exited meanwhile
            continue
        # The command name is in parentheses and may hold spaces.
        command = stat[stat.index('(') + 1:stat.rindex(')')]
        fields = stat[stat.rindex(')') + 2:].split()
        session = int(fields[3])
        # utime, stime, cutime, cstime (fields 14-17 of proc(5)).
        ticks = sum(int(x) for x in fields[11:15])
        if session == 0:
            # Kernel threads; a kworker's name changes with its work.
            part = KERNEL
        else:
            part = sessions.get(session, command)
        totals[part] += ticks / _TICKS
    totals[MACHINE] = machine_busy()
    return dict(totals)


class Window:
    """CPU-seconds spent from its creation until :meth:`close`."""

    def __init__(self, sessions: Mapping[int, str]) -> None:
        self._sessions = dict(sessions)
        self._before = by_part(self._sessions)

    def close(self) -> dict[str, float]:
        """Seconds per part (at least 0.01 s of CPU), :data:`MACHINE`
        always."""
        after = by_part(self._sessions)
        spent = {part: round(seconds - self._before.get(part, 0.0), 2)
                 for part, seconds in after.items()}
        return {part: seconds for part, seconds in spent.items()
                if seconds >= 0.01 or part == MACHINE}
