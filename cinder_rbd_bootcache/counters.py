"""Exact counters shared by every process and host: a RADOS omap.

The boot cache counts hits and misses and remembers when each entry was
last used.  Twenty volumes cloned from one entry at once, by processes on
different hosts, must add twenty hits, so a read-modify-write of RBD image
metadata (which has no compare-and-swap) would lose updates.  A RADOS
object's omap has one: a write op asserts the values it read
(``omap_cmp``) and sets the new ones, and the OSD applies all or nothing;
on a lost race (ECANCELED) we read again and retry.

Values are decimal strings; a missing key reads as 0 (and, for the OSD's
comparison, as the empty value).
"""

from __future__ import annotations

import errno
import random
import time
from typing import Any, Iterable, Mapping

from cinder_rbd_bootcache import compat


# Contention is a handful of writers per image; 100 rounds with jitter is
# far beyond what a boot storm needs and still bounded.
MAX_ATTEMPTS = 100


class CounterConflict(Exception):
    """Gave up after MAX_ATTEMPTS lost races (should never happen)."""


class Counters:
    """Named integers in the omap of RADOS object ``obj``."""

    def __init__(self, ioctx: Any, obj: str) -> None:
        # Calls that wait on the OSD run off eventlet's hub.
        self._ioctx = compat.tpool_wrap(ioctx)
        self._obj = obj

    def get(self, keys: Iterable[str]) -> dict[str, int]:
        raw = self._read(list(keys))
        return {key: int(value or 0) for key, value in raw.items()}

    def all(self) -> dict[str, int]:
        """Every counter, by key."""
        import rados
        with rados.ReadOpCtx() as op:
            found, _ret = self._ioctx.get_omap_vals(op, '', '', -1)
            try:
                self._ioctx.operate_read_op(op, self._obj)
            except rados.ObjectNotFound:
                return {}
            return {key: int(value or 0) for key, value in found}

    def update(self, add: Mapping[str, int] = None,
               maximum: Mapping[str, int] = None) -> None:
        """Add to some counters and raise others to at least a value, at
        once.  ``maximum`` suits timestamps: a late writer with an older
        time never moves ``last used`` back."""
        import rados
        add = dict(add or {})
        maximum = dict(maximum or {})
        keys = sorted(set(add) | set(maximum))
        for _attempt in range(MAX_ATTEMPTS):
            current = self._read(keys)
            new = {}
            for key in keys:
                value = int(current[key] or 0)
                if key in add:
                    value += add[key]
                if key in maximum:
                    value = max(value, maximum[key])
                new[key] = str(value).encode()
            with rados.WriteOpCtx() as op:
                op.new(rados.LIBRADOS_CREATE_IDEMPOTENT)
                for key in keys:
                    op.omap_cmp(key, current[key] or '',
                                rados.LIBRADOS_CMPXATTR_OP_EQ)
                self._ioctx.set_omap(op, tuple(keys),
                                     tuple(new[k] for k in keys))
                try:
                    self._ioctx.operate_write_op(op, self._obj)
                    return
                except rados.OSError as exc:
                    if exc.errno != errno.ECANCELED:
                        raise
            time.sleep(random.uniform(0, 0.05))
        raise CounterConflict('%d lost races updating %s on %s'
                              % (MAX_ATTEMPTS, keys, self._obj))

    def forget(self, keys: Iterable[str]) -> None:
        import rados
        keys = tuple(keys)
        with rados.WriteOpCtx() as op:
            self._ioctx.remove_omap_keys(op, keys)
            try:
                self._ioctx.operate_write_op(op, self._obj)
            except rados.ObjectNotFound:
                pass

    def _read(self, keys: list[str]) -> dict[str, str]:
        import rados
        with rados.ReadOpCtx() as op:
            found, _ret = self._ioctx.get_omap_vals_by_keys(op, tuple(keys))
            try:
                self._ioctx.operate_read_op(op, self._obj)
                values = {k: v.decode() for k, v in found}
            except rados.ObjectNotFound:
                values = {}
        return {key: values.get(key, '') for key in keys}
