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

import collections
import errno
import threading
from typing import Any
from typing import Iterable
from typing import Mapping
from typing import Optional

import tenacity

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.ceph import omap
from cinder_rbd_bootcache.upstream import compat

# Contention is a handful of writers per image; 100 rounds with jitter is
# far beyond what a boot storm needs and still bounded.
MAX_ATTEMPTS = 100


class CounterConflict(Exception):
    """Gave up after MAX_ATTEMPTS lost races (should never happen)."""


def _lost_race(exc: BaseException) -> bool:
    """Another writer changed a value between our read and our write."""
    return (isinstance(exc, ceph.rados.OSError) and
            exc.errno == errno.ECANCELED)


class Counters:
    """Named integers in the omap of RADOS object ``obj``."""

    def __init__(self, ioctx: Any, obj: str) -> None:
        #: Which object this is, for ``update_batched``: one process may
        #: hold several connections (and Counters) of the same pool.
        self.key = ((ioctx.get_pool_id(), ioctx.get_namespace()), obj)
        # Calls that wait on the OSD run off eventlet's hub.
        self._ioctx = compat.tpool_wrap(ioctx)
        self._obj = obj

    def get(self, keys: Iterable[str]) -> dict[str, int]:
        raw = self._read(list(keys))
        return {key: int(value or 0) for key, value in raw.items()}

    def all(self) -> dict[str, int]:
        """Every counter, by key (read in pages: see ``omap``)."""
        return {key: int(value or 0)
                for key, value in omap.items(self._ioctx, self._obj)}

    def update(self, add: Mapping[str, int] = None,
               maximum: Mapping[str, int] = None) -> None:
        """Add to some counters and raise others to at least a value, at
        once.  ``maximum`` suits timestamps: a late writer with an older
        time never moves ``last used`` back."""
        add = dict(add or {})
        maximum = dict(maximum or {})
        keys = sorted(set(add) | set(maximum))
        try:
            self._update_once(keys, add, maximum)
        except tenacity.RetryError:
            raise CounterConflict('%d lost races updating %s on %s'
                                  % (MAX_ATTEMPTS, keys, self._obj))

    @tenacity.retry(retry=tenacity.retry_if_exception(_lost_race),
                    stop=tenacity.stop_after_attempt(MAX_ATTEMPTS),
                    wait=tenacity.wait_random(0, 0.05))
    def _update_once(self, keys: list[str], add: dict[str, int],
                     maximum: dict[str, int]) -> None:
        """Read, compute, and write only if nobody wrote in between; a lost
        race (ECANCELED) is retried after a random pause."""
        current = self._read(keys)
        new = {}
        for key in keys:
            value = int(current[key] or 0)
            if key in add:
                value += add[key]
            if key in maximum:
                value = max(value, maximum[key])
            new[key] = str(value).encode()
        with ceph.rados.WriteOpCtx() as op:
            op.new(ceph.rados.LIBRADOS_CREATE_IDEMPOTENT)
            for key in keys:
                op.omap_cmp(key, current[key] or '',
                            ceph.rados.LIBRADOS_CMPXATTR_OP_EQ)
            self._ioctx.set_omap(op, tuple(keys),
                                 tuple(new[k] for k in keys))
            self._ioctx.operate_write_op(op, self._obj)

    def update_batched(self, add: Mapping[str, int] = None,
                       maximum: Mapping[str, int] = None) -> None:
        """``update``, written together with the updates other threads of
        this process make of the same object at the same time.

        A storm of creates of one image counts a hit each at the same
        moment; as separate compare-and-swaps they lose races to each
        other and retry one after another, and each create waits for its
        own.  Here one caller writes what all of them added meanwhile, in
        one compare-and-swap; every caller returns once its values are
        written (or raises what writing them raised).
        """
        _BATCHES.update(self, add or {}, maximum or {})

    def forget(self, keys: Iterable[str]) -> None:
        keys = tuple(keys)
        with ceph.rados.WriteOpCtx() as op:
            self._ioctx.remove_omap_keys(op, keys)
            try:
                self._ioctx.operate_write_op(op, self._obj)
            except ceph.rados.ObjectNotFound:
                pass

    def _read(self, keys: list[str]) -> dict[str, str]:
        with ceph.rados.ReadOpCtx() as op:
            found, _ret = self._ioctx.get_omap_vals_by_keys(op, tuple(keys))
            try:
                self._ioctx.operate_read_op(op, self._obj)
                values = {k: v.decode() for k, v in found}
            except ceph.rados.ObjectNotFound:
                values = {}
        return {key: values.get(key, '') for key in keys}


class _Batch:
    """Values added by callers waiting for one write."""

    def __init__(self) -> None:
        self.add: collections.Counter = collections.Counter()
        self.maximum: dict[str, int] = {}
        self.written = threading.Event()
        self.error: Optional[BaseException] = None

    def merge(self, add: Mapping[str, int],
              maximum: Mapping[str, int]) -> None:
        self.add.update(add)
        for key, value in maximum.items():
            self.maximum[key] = max(value, self.maximum.get(key, value))


class _Batches:
    """Per object: the batch callers join while another caller writes.

    The first caller of an object becomes its writer and writes batches
    until none is open; its role ends under the same lock that callers
    join a batch under, so no batch is ever left without a writer.
    Threads are green under eventlet (the write itself runs in its
    thread pool, which is when other callers join).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[Any, _Batch] = {}
        self._writing: set = set()

    def update(self, counters: Counters, add: Mapping[str, int],
               maximum: Mapping[str, int]) -> None:
        key = counters.key
        with self._lock:
            batch = self._open.setdefault(key, _Batch())
            batch.merge(add, maximum)
            writer = key not in self._writing
            if writer:
                self._writing.add(key)
        if writer:
            self._write_until_none_open(counters, key)
        batch.written.wait()
        if batch.error is not None:
            raise batch.error

    def _write_until_none_open(self, counters: Counters, key: Any) -> None:
        while True:
            with self._lock:
                batch = self._open.pop(key, None)
                if batch is None:
                    self._writing.discard(key)
                    return
            try:
                counters.update(dict(batch.add), batch.maximum)
            except BaseException as exc:  # each caller raises its own
                batch.error = exc
            finally:
                batch.written.set()


_BATCHES = _Batches()
