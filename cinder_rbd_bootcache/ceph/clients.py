"""One librados client per Ceph identity, shared by a process's operations.

Upstream's RBDDriver connects a new librados client for every operation
(``RADOSClient``, ``RBDVolumeProxy``): a monitor session, cephx
authentication and the first maps, each a few round trips and some CPU.
A create from a cached image needs four of them (our look-up, then
upstream's clone source, clone destination and resize), a large part of
such a create's time.  A librados
client is thread-safe and carries any number of ioctxs, as Ceph's own
mgr modules and ceph-csi use it, so the driver keeps one connected
client per (cluster, user, ceph.conf, operation timeout) and opens an
ioctx per operation instead, which needs no round trip once the client
has the OSD map.

A shared client stops being handed out when a new connection would
differ from it, or when it may be broken:

* in a forked child (librados clients do not survive a fork);
* when its ceph.conf changed (size, mtime or inode): the next operation
  connects anew and reads it, as upstream's next connection would;
* after :data:`MAX_AGE` seconds, so that what only a new connection
  picks up (a rotated cephx key, a keyring file named in ceph.conf) is
  picked up within minutes;
* when an operation on it failed with an error that says the client
  itself is unusable (:func:`client_unusable`: blocklisted, shut down,
  timed out, not connected).  That one operation fails as it would have
  with upstream's client; the next one gets a new client.

A client taken out of use is shut down once the last ioctx opened on it is
closed, never under an operation still using it.

Why by hand: neither the rados binding nor oslo offers a pool of
librados clients (os-brick's and Nova's RBD code connect per
operation too).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
import time
from typing import Any
from typing import Callable
from typing import Optional

from oslo_log import log as logging

from cinder_rbd_bootcache.upstream import compat

LOG = logging.getLogger(__name__)

#: Seconds a shared client is handed out for; then the next operation
#: connects anew (see the module's docstring).
MAX_AGE = 300

#: errno values (positive, as the bindings give them) after which a
#: client is not handed out again.  ESHUTDOWN is also librados'
#: EBLOCKLISTED.
_UNUSABLE_ERRNOS = frozenset({errno.ESHUTDOWN, errno.ETIMEDOUT,
                              errno.ENOTCONN, errno.ECONNREFUSED,
                              errno.ECONNRESET})

#: ``connect(pool, remote, timeout)`` -> (client, ioctx): upstream's
#: ``RBDDriver._connect_to_rados`` (its retries, timeouts and errors).
Connect = Callable[[str, Optional[dict], int], tuple]


def client_unusable(exc: Optional[BaseException]) -> bool:
    """Whether ``exc`` (or an exception it was raised from or during)
    says the librados client itself cannot go on: upstream's code often
    re-raises librados' error as a Cinder exception."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, 'errno', None)
        if isinstance(code, int) and abs(code) in _UNUSABLE_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _conf_stamp(path: str) -> Optional[tuple]:
    try:
        stat = os.stat(path)
    except (OSError, TypeError, ValueError):
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


@dataclasses.dataclass(eq=False)
class _Shared:
    client: Any
    key: tuple
    label: str
    conf_stamp: Optional[tuple]
    pid: int
    born: float
    users: int = 0
    retired: bool = False
    closed: bool = False


class SharedClients:
    """The shared clients of one process (see the module's docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_age: float = MAX_AGE) -> None:
        self._clock = clock
        self._max_age = max_age
        # Native under eventlet too: creates on the hub and maintenance
        # in eventlet's pool threads share it, and it is only held for
        # dictionary updates, never across a call that could yield.
        self._lock = compat.native_threading().Lock()
        self._live: dict[tuple, _Shared] = {}
        self._by_client: dict[int, _Shared] = {}

    def connect(self, connect: Connect, identity: tuple, label: str,
                conf_path: str, pool: str, remote: Optional[dict],
                timeout: int) -> tuple[Any, Any]:
        """(client, ioctx of ``pool``): the shared client of
        ``identity`` and ``timeout`` if it may still be used, else a new
        one made by ``connect``, which is then shared.  ``label`` names
        the client in logs (user and cluster)."""
        key = (identity, timeout)
        stamp = _conf_stamp(conf_path)
        stale = None
        with self._lock:
            shared = self._live.get(key)
            if shared is not None and not self._still_good(shared, stamp):
                self._retire(shared)
                stale = shared if self._closing(shared) else None
                shared = None
            if shared is not None:
                shared.users += 1
        if stale is not None:
            self._shut_down(stale)
        if shared is not None:
            try:
                return shared.client, shared.client.open_ioctx(pool)
            except Exception:
                LOG.debug('Shared librados client %s could not open pool '
                          '%s; connecting anew.', label, pool,
                          exc_info=True)
                self._release(shared, retire=True)
        client, ioctx = connect(pool, remote, timeout)
        made = _Shared(client, key, label, stamp, os.getpid(),
                       self._clock(), users=1)
        with self._lock:
            self._by_client[id(client)] = made
            current = self._live.get(key)
            if current is None or current.retired:
                self._live[key] = made
            else:
                # Another operation connected at the same time and won;
                # this client serves this operation only.
                made.retired = True
        return client, ioctx

    def disconnect(self, client: Any, ioctx: Any) -> bool:
        """Close ``ioctx``; False (nothing done) if ``client`` is not one
        of ours.  Called while an operation's exception propagates (a
        with-block's exit), it retires the client if the exception says
        the client is unusable."""
        with self._lock:
            shared = self._by_client.get(id(client))
        if shared is None or shared.client is not client:
            return False
        broken = client_unusable(sys.exc_info()[1])
        try:
            ioctx.close()
        finally:
            if broken:
                LOG.warning('Shared librados client %s failed (%s); the '
                            'next operation connects anew.',
                            shared.label, sys.exc_info()[1])
            self._release(shared, retire=broken)
        return True

    def close_all(self) -> None:
        """Take every client out of use; each is shut down now, or when
        its last operation closes its ioctx (a program about to exit, a
        test about to stop its cluster)."""
        with self._lock:
            everything = list(self._by_client.values())
            for shared in everything:
                self._retire(shared)
            idle = [s for s in everything if self._closing(s)]
        for shared in idle:
            self._shut_down(shared)

    def _still_good(self, shared: _Shared, stamp: Optional[tuple]) -> bool:
        return (not shared.retired and shared.pid == os.getpid() and
                shared.conf_stamp == stamp and
                self._clock() - shared.born < self._max_age)

    def _retire(self, shared: _Shared) -> None:
        shared.retired = True
        if self._live.get(shared.key) is shared:
            del self._live[shared.key]

    def _closing(self, shared: _Shared) -> bool:
        """Whether ``shared`` must be shut down now (lock held)."""
        if not shared.retired or shared.users or shared.closed:
            return False
        shared.closed = True
        self._by_client.pop(id(shared.client), None)
        return True

    def _release(self, shared: _Shared, retire: bool = False) -> None:
        with self._lock:
            shared.users -= 1
            if retire:
                self._retire(shared)
            closing = self._closing(shared)
        if closing:
            self._shut_down(shared)

    @staticmethod
    def _shut_down(shared: _Shared) -> None:
        if shared.pid != os.getpid():
            return  # the parent's: it shuts it down itself
        try:
            shared.client.shutdown()
        except Exception:
            LOG.debug('Shutting down librados client %s failed.',
                      shared.label, exc_info=True)


#: This process's shared clients.
CLIENTS = SharedClients()
