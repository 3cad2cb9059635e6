"""The CPU seconds a create costs, wherever they are spent.

A create's work is done in three places: the cinder-volume process (every
thread of it: the flow, eventlet's thread pool, librados' and librbd's
threads), the child processes it runs (qemu-img, upstream's ``rbd
import``, cryptsetup), and the sandbox's OSDs, which store every byte
written.  Wall seconds on a shared machine say how the cores were shared;
the sum of the three says what the work costs.

* process: ``time.process_time()`` of this process;
* children: ``getrusage(RUSAGE_CHILDREN)``, which counts a child once it
  has ended and been waited for (processutils and ``run_with_progress``
  wait for every child before they return; a child still running when the
  create returns is not counted);
* OSDs: user + system time of each ``ceph-osd`` of the sandbox, from
  ``/proc/<pid>/stat``; an OSD that is not running at both ends of the
  create is left out.

Work a create leaves for later (the boot cache's finisher, which makes the
entry's snapshot after the volume is ready) is counted only up to the
moment the create returns.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from typing import Any
from typing import Optional

_TICKS = os.sysconf('SC_CLK_TCK')


@dataclasses.dataclass(frozen=True)
class CpuSeconds:
    """CPU seconds spent by this process, its children and the OSDs."""
    process: float = 0.0
    children: float = 0.0
    osds: float = 0.0

    @property
    def total(self) -> float:
        return self.process + self.children + self.osds


def _proc_seconds(pid: int) -> Optional[float]:
    """User + system CPU seconds of ``pid``, or None if it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: count after it.
    fields = stat[stat.rindex(')') + 2:].split()
    # utime and stime are fields 14 and 15 of proc(5), 12 and 13 here.
    return (int(fields[11]) + int(fields[12])) / _TICKS


class Meter:
    """``with Meter(sandbox) as meter:`` then ``meter.spent``."""

    def __init__(self, sandbox: Any = None) -> None:
        self._sandbox = sandbox
        self.spent = CpuSeconds()

    def _osds(self) -> dict[int, float]:
        if self._sandbox is None:
            return {}
        found = {}
        for name, pid in self._sandbox.daemon_pids().items():
            if name.startswith('osd.'):
                seconds = _proc_seconds(pid)
                if seconds is not None:
                    found[pid] = seconds
        return found

    @staticmethod
    def _children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> 'Meter':
        self._osds_before = self._osds()
        self._children_before = self._children()
        self._process_before = time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        process = time.process_time() - self._process_before
        children = self._children() - self._children_before
        osds_after = self._osds()
        osds = sum(seconds - self._osds_before[pid]
                   for pid, seconds in osds_after.items()
                   if pid in self._osds_before)
        self.spent = CpuSeconds(process, children, osds)
