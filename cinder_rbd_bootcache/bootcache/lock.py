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

import contextlib
import struct
import threading
import time
from typing import Any
from typing import Callable
from typing import Iterator
from typing import Optional
from typing import TypeVar
from typing import Union
import uuid

from oslo_log import log as logging

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.upstream import compat

LOG = logging.getLogger(__name__)

_T = TypeVar('_T')

LOCK_NAME = 'bootcache-populate'

# librados.h: LIBRADOS_LOCK_FLAG_MUST_RENEW; the Python binding does not
# export it.
MUST_RENEW = 0x2


def unlock_input(name: str, cookie: str) -> bytes:
    """The input of cls_lock's ``unlock`` method (``cls_lock_unlock_op``
    in Ceph's encoding: version 1, compat 1, the payload's length, then
    each string as its length and bytes, all little-endian).

    Written here because the ``rados`` binding unlocks only as a call of
    its own (``Ioctx.unlock``), which cannot share a write op with the
    removal of the object; ``WriteOp.execute`` takes the method's input
    as bytes.
    """
    payload = b''.join(struct.pack('<I', len(text)) + text
                       for text in (name.encode(), cookie.encode()))
    return struct.pack('<BBI', 1, 1, len(payload)) + payload


class LeaseLost(Exception):
    """The lease expired and was not renewed: someone else may hold it."""


class HeldByAnother(Exception):
    """Another held the lock all the time :func:`holding` could wait."""


class PopulationLock:
    """An exclusive, expiring lock on RADOS object ``key`` of ``ioctx``."""

    def __init__(self, ioctx: Any, key: str, lease: int,
                 description: str = '') -> None:
        self._ioctx = compat.tpool_wrap(ioctx)
        # The renewer's own: it runs on a native thread, off any hub.
        self._native_ioctx = ioctx
        self.key = key
        self.lease = lease
        self.cookie = uuid.uuid4().hex
        self.description = description
        # A native thread and event in both concurrency modes: a green
        # renewer started in a thread of eventlet's pool (maintenance runs
        # there) would not run while that thread waits in librbd, and the
        # lease would run out under a long pass (compat.native_threading).
        self._native = compat.native_threading()
        self._renewer: Optional[Any] = None
        self._stop = self._native.Event()
        self.lost: Optional[BaseException] = None
        self._loss_logged = False
        self._held_here = False

    def try_acquire(self) -> bool:
        """Take the lock if free (or expired); False if another holds it."""
        try:
            self._ioctx.lock_exclusive(self.key, LOCK_NAME, self.cookie,
                                       desc=self.description,
                                       duration=self.lease)
        except (ceph.rados.ObjectBusy, ceph.rados.ObjectExists):
            return False
        WAKEUPS.holding(self.key)
        self._held_here = True
        self._start_renewing()
        return True

    def _renew(self) -> None:
        """Extend the lease, from the renewer's native thread; LeaseLost
        if it was no longer ours."""
        try:
            self._native_ioctx.lock_exclusive(
                self.key, LOCK_NAME, self.cookie, desc=self.description,
                duration=self.lease, flags=MUST_RENEW)
        except ceph.rados.Error as exc:
            raise LeaseLost('lock %s on %s: %s' % (LOCK_NAME, self.key, exc))

    def wake_waiters(self) -> None:
        """Tell this process's waiters to look now: the work they wait
        for is visible (the lock is still held)."""
        WAKEUPS.wake(self.key)

    def check(self) -> None:
        """Raise LeaseLost if the renewer found the lease gone."""
        if self.lost is not None:
            self._log_loss()
            raise LeaseLost(str(self.lost))

    def _log_loss(self) -> None:
        # Logged here, by the holder's thread, not by the renewer: under
        # eventlet oslo.log's handlers take green locks, which a native
        # thread must not wait on.
        if not self._loss_logged:
            self._loss_logged = True
            LOG.error('Lost the population lease %(key)s: %(err)s',
                      {'key': self.key, 'err': self.lost})

    def release(self) -> None:
        """Stop renewing, unlock, and remove the lock object; then wake
        this process's waiters for the same key."""
        self._stop.set()
        if self._renewer is not None:
            # Off the hub: the renewer may be in a call to the OSD.
            compat.tpool_wrap(self._renewer).join()
            self._renewer = None
        if self.lost is not None:
            self._log_loss()
        try:
            self._unlock_and_remove()
        finally:
            held_here, self._held_here = self._held_here, False
            WAKEUPS.let_go(self.key, held_here)

    def _unlock_and_remove(self) -> None:
        # One write op: the OSD applies the unlock and the removal of the
        # object together, or neither.  As two calls, another client could
        # lock the object between them, and the removal would take its
        # lock along: two holders at once, as a third could lock the
        # object anew (two populations of one image, one renaming its
        # entry into place while another host removes the entry by name).
        with ceph.rados.WriteOpCtx() as op:
            op.execute('lock', 'unlock', unlock_input(LOCK_NAME, self.cookie))
            op.remove()
            try:
                self._ioctx.operate_write_op(op, self.key)
            except ceph.rados.ObjectNotFound:
                # ENOENT from cls_lock: the lease ran out and the lock is
                # gone or another's now; the object is left to its holder.
                pass

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._renewer = self._native.Thread(
            target=self._renew_loop, name='bootcache-lease', daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        # A third of the lease: two renewals may fail before it expires.
        while not self._stop.wait(self.lease / 3):
            try:
                self._renew()
            except LeaseLost as exc:
                self.lost = exc
                return


class Wakeups:
    """Counts, per lock key, the times a holder in this process released
    its lock or published its work, so that a waiter in the same process
    looks again at once instead of at its next look.

    The holder of a population and most of its waiters are usually the
    same cinder-volume (a storm of creates of one image through one
    backend): they then see the entry as soon as it is published, not up
    to a second later (:func:`next_wait`).  A waiter on another host still
    looks in Ceph at that pace.  The count closes the gap between a
    waiter's look and its sleep: it sleeps only while the count is what
    it was before it looked.  While the holder is in this process, its
    waiters look in Ceph only once every MAX_WAIT (it wakes them): ten
    waiters looking every few tens of ms took CPU from the population
    they waited for.  A count is kept per key ever used in the process
    (one small int per image it populated): dropping one could reset it
    to a value a sleeping waiter marked, and that waiter would miss its
    wake.

    Under eventlet only the hub's thread takes part (creates run there):
    a holder in a thread of eventlet's pool (maintenance) neither counts
    as held here nor wakes anyone, and a waiter there just sleeps.  The
    condition is green, and waking the hub's waiters from another native
    thread lost their wakes (compat.off_the_hub_thread).
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._counts: dict[str, int] = {}
        self._held: dict[str, int] = {}

    def holding(self, key: str) -> None:
        """A lock of this process took ``key``."""
        if compat.off_the_hub_thread():
            return
        with self._changed:
            self._held[key] = self._held.get(key, 0) + 1

    def held_here(self, key: str) -> bool:
        if compat.off_the_hub_thread():
            return False
        with self._changed:
            return key in self._held

    def let_go(self, key: str, was_held: bool = True) -> None:
        """A lock of this process released ``key``: wake its waiters."""
        if compat.off_the_hub_thread():
            return
        with self._changed:
            if was_held and key in self._held:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]
            self._wake(key)

    def mark(self, key: str) -> int:
        """The count of ``key`` now; take it before looking."""
        if compat.off_the_hub_thread():
            return 0
        with self._changed:
            return self._counts.get(key, 0)

    def wake(self, key: str) -> None:
        if compat.off_the_hub_thread():
            return
        with self._changed:
            self._wake(key)

    def _wake(self, key: str) -> None:
        self._counts[key] = self._counts.get(key, 0) + 1
        self._changed.notify_all()

    def wait(self, key: str, mark: int, seconds: float) -> bool:
        """Sleep ``seconds``, or less if a holder of ``key`` wakes its
        waiters meanwhile; True if one did."""
        if compat.off_the_hub_thread():
            time.sleep(seconds)
            return False
        with self._changed:
            return self._changed.wait_for(
                lambda: self._counts.get(key, 0) != mark, seconds)


#: Every PopulationLock of this process reports here.
WAKEUPS = Wakeups()

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


@contextlib.contextmanager
def holding(ioctx: Any, key: str, lease: int, description: str,
            wait: float = 0) -> Iterator[PopulationLock]:
    """Hold the lock on ``key`` for the with-block, renewed meanwhile and
    released after it: taken at once, or within ``wait`` seconds (a
    holder in this process wakes the wait when it lets go).  Raises
    HeldByAnother, having held nothing, if another holds it throughout.

    For work done under the lock by whoever gets it (maintenance,
    removals); a population, whose waiters also look for its published
    work, uses :func:`acquire_or_wait` with its own ``ready``.
    """
    held = PopulationLock(ioctx, key, lease, description=description)
    try:
        acquire_or_wait(held.try_acquire, lambda: False, timeout=wait,
                        key=key)
    except TimeoutError:
        raise HeldByAnother('%s is locked by another' % key) from None
    try:
        yield held
    finally:
        held.release()


def acquire_or_wait(acquire: Callable[[], bool], ready: Callable[[], _T],
                    timeout: float, interval: Optional[float] = None,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Optional[Callable[[float], None]] = None,
                    key: Optional[str] = None) -> Union[_T, bool]:
    """Until ``ready()`` (truthy) or ``acquire()`` (False), for ``timeout``.

    Returns what ``ready()`` returned when another holder finished the
    work (e.g. the entry it published), False when the caller now holds
    the lock and must do it; raises TimeoutError.  Looks
    every ``interval`` seconds if given, else as :func:`next_wait` says;
    with the lock's ``key``, also as soon as a holder in this process
    releases it or publishes its work (:class:`Wakeups`).
    """
    started = clock()
    deadline = started + timeout
    while True:
        mark = WAKEUPS.mark(key) if key is not None else 0
        done = ready()
        if done:
            return done
        if acquire():
            # The holder may have finished between ready() and acquire().
            return False
        now = clock()
        if now >= deadline:
            raise TimeoutError('waited %.0f s' % timeout)
        seconds = interval if interval is not None else \
            next_wait(now - started)
        if key is not None and WAKEUPS.held_here(key):
            seconds = max(seconds, MAX_WAIT)
        if sleep is not None:
            sleep(seconds)
        elif key is not None:
            WAKEUPS.wait(key, mark, seconds)
        else:
            time.sleep(seconds)
