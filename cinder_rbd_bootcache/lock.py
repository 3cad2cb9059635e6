"""Single-flight across hosts: a lease kept in Ceph itself.

Populating a boot-cache entry must happen once per image however many
cinder-volume processes, on however many hosts, ask at once; and a holder
that dies (kill -9, host crash) must not block the others for longer than
its lease.  A RADOS exclusive lock (``cls_lock``) on a small object in the
backend's pool gives exactly that with no new service: it has a duration
after which the OSD forgets it, and the holder renews it while it works.

Why not ``cinder.coordination`` (tooz): its default file backend only
covers one host, and a distributed backend (etcd, redis) is a service many
Ceph-backed clouds do not run.  Every host of the backend already talks to
this pool.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable, Optional

from oslo_log import log as logging

from cinder_rbd_bootcache import ceph
from cinder_rbd_bootcache import compat

LOG = logging.getLogger(__name__)

LOCK_NAME = 'bootcache-populate'

# librados.h: LIBRADOS_LOCK_FLAG_MAY_RENEW / LIBRADOS_LOCK_FLAG_MUST_RENEW;
# the Python binding does not export them.
MAY_RENEW = 0x1
MUST_RENEW = 0x2


class LeaseLost(Exception):
    """The lease expired and was not renewed: someone else may hold it."""


class PopulationLock:
    """An exclusive, expiring lock on RADOS object ``key`` of ``ioctx``."""

    def __init__(self, ioctx: Any, key: str, lease: int,
                 description: str = '') -> None:
        self._ioctx = compat.tpool_wrap(ioctx)
        self.key = key
        self.lease = lease
        self.cookie = uuid.uuid4().hex
        self.description = description
        self._renewer: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self.lost: Optional[BaseException] = None

    def try_acquire(self) -> bool:
        """Take the lock if free (or expired); False if another holds it."""
        try:
            self._ioctx.lock_exclusive(self.key, LOCK_NAME, self.cookie,
                                       desc=self.description,
                                       duration=self.lease)
        except (ceph.rados.ObjectBusy, ceph.rados.ObjectExists):
            return False
        self._start_renewing()
        return True

    def renew(self) -> None:
        """Extend the lease; LeaseLost if it was no longer ours."""
        try:
            self._ioctx.lock_exclusive(self.key, LOCK_NAME, self.cookie,
                                       desc=self.description,
                                       duration=self.lease,
                                       flags=MUST_RENEW)
        except ceph.rados.Error as exc:
            raise LeaseLost('lock %s on %s: %s' % (LOCK_NAME, self.key, exc))

    def check(self) -> None:
        """Raise LeaseLost if the renewer found the lease gone."""
        if self.lost is not None:
            raise LeaseLost(str(self.lost))

    def release(self) -> None:
        """Stop renewing, unlock, and remove the lock object."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        try:
            self._ioctx.unlock(self.key, LOCK_NAME, self.cookie)
        except ceph.rados.ObjectNotFound:
            return  # expired and gone, nothing to release
        try:
            self._ioctx.remove_object(self.key)
        except ceph.rados.ObjectNotFound:
            pass

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop,
                                         name='bootcache-lease', daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        # A third of the lease: two renewals may fail before it expires.
        while not self._stop.wait(self.lease / 3):
            try:
                self.renew()
            except LeaseLost as exc:
                LOG.error('Lost the population lease %(key)s: %(err)s',
                          {'key': self.key, 'err': exc})
                self.lost = exc
                return


#: How soon a waiter first looks again, and the most it ever sleeps.
FIRST_WAIT = 0.05
MAX_WAIT = 1.0


def next_wait(waited: float) -> float:
    """Sleep before the next look, having waited ``waited`` seconds.

    A twentieth of the wait so far, between FIRST_WAIT and MAX_WAIT: a
    waiter sees the entry within about 5 % of its wait after it is ready
    (a population of two seconds keeps its waiters to about 2.1 s, where a
    fixed second would add up to one), and a population of minutes costs
    each waiter one look a second.
    """
    return min(MAX_WAIT, max(FIRST_WAIT, waited / 20))


def acquire_or_wait(acquire: Callable[[], bool], ready: Callable[[], bool],
                    timeout: float, interval: Optional[float] = None,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> bool:
    """Until ``ready()`` (True) or ``acquire()`` (False), for ``timeout``.

    Returns True when another holder finished the work, False when the
    caller now holds the lock and must do it; raises TimeoutError.  Looks
    every ``interval`` seconds if given, else as :func:`next_wait` says.
    """
    started = clock()
    deadline = started + timeout
    while True:
        if ready():
            return True
        if acquire():
            # The holder may have finished between ready() and acquire().
            return False
        now = clock()
        if now >= deadline:
            raise TimeoutError('waited %.0f s' % timeout)
        sleep(interval if interval is not None else next_wait(now - started))
