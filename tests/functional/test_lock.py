"""The population lease on the sandbox's RADOS: exclusive, renewed while
held, and free again once a killed holder's lease runs out."""

import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from cinder_rbd_bootcache.bootcache import lock


# cls_lock expiry is checked against the OSD's clock when another client
# asks; on the sandbox a 2-3 s lease was measured to free after 2-6.5 s.
LEASE_SLACK = 6


@pytest.fixture
def ioctx(cinder):
    with cinder.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        yield ioctx


@pytest.fixture
def key():
    return 'bootcache.lock.test-%s' % uuid.uuid4().hex[:8]


def test_exclusive_then_free_after_release(ioctx, key):
    first = lock.PopulationLock(ioctx, key, lease=30)
    second = lock.PopulationLock(ioctx, key, lease=30)
    assert first.try_acquire()
    try:
        assert not second.try_acquire()
    finally:
        first.release()
    assert second.try_acquire()
    second.release()
    with pytest.raises(lock.ceph.rados.ObjectNotFound):
        ioctx.stat(key)  # a release removes the lock object


class _RacingIoctx:
    """The holder's ioctx, with another client trying to take the lock
    after each request the holder's release sends: the earliest moment
    another host could get in.  The competitor locks with a plain
    ``lock_exclusive`` from inside the holder's calls (in eventlet's
    thread pool under eventlet) and holds no lease of its own: the test
    unlocks it."""

    COOKIE = 'competitor'

    def __init__(self, ioctx, key):
        self._ioctx = ioctx
        self._key = key
        self.competitor_holds = False

    def __getattr__(self, name):
        call = getattr(self._ioctx, name)
        if name not in ('unlock', 'remove_object', 'operate_write_op'):
            return call

        def then_compete(*args, **kwargs):
            try:
                return call(*args, **kwargs)
            finally:
                if not self.competitor_holds:
                    self._compete()
        return then_compete

    def _compete(self):
        try:
            self._ioctx.lock_exclusive(self._key, lock.LOCK_NAME,
                                       self.COOKIE, duration=30)
        except (lock.ceph.rados.ObjectBusy, lock.ceph.rados.ObjectExists):
            return
        self.competitor_holds = True


def test_release_never_takes_another_holders_lock(ioctx, key):
    """Whenever another client takes the lock during a release, it holds
    it alone afterwards: the release's unlock and its removal of the
    object are one OSD operation, so the removal never removes a lock
    taken between them."""
    racing = _RacingIoctx(ioctx, key)
    holder = lock.PopulationLock(racing, key, lease=30)
    third = lock.PopulationLock(ioctx, key, lease=30)
    assert holder.try_acquire()
    holder.release()
    try:
        assert racing.competitor_holds
        assert not third.try_acquire()
    finally:
        if racing.competitor_holds:
            ioctx.unlock(key, lock.LOCK_NAME, racing.COOKIE)
        ioctx.remove_object(key)


def test_renewed_while_held(ioctx, key):
    holder = lock.PopulationLock(ioctx, key, lease=2)
    other = lock.PopulationLock(ioctx, key, lease=2)
    assert holder.try_acquire()
    try:
        time.sleep(5)  # 2.5 leases: only renewal keeps it
        assert not other.try_acquire()
        holder.check()
    finally:
        holder.release()


def _native_sleep(seconds):
    """Sleep without yielding to eventlet's hub, as a librbd call does."""
    from cinder_rbd_bootcache.upstream import compat
    if compat.eventlet_patched():
        from eventlet import patcher
        patcher.original('time').sleep(seconds)
    else:
        time.sleep(seconds)


def test_renewed_while_the_holders_thread_waits_in_a_native_call(
        ioctx, key):
    """The lease outlives a holder that never yields: taken in a thread
    of eventlet's pool (where maintenance runs) that then sits in native
    calls for longer than the lease and its slack, as in long librbd
    calls, it is still held and still the holder's."""
    from cinder_rbd_bootcache.upstream import compat
    holder = lock.PopulationLock(ioctx, key, lease=2)
    other = lock.PopulationLock(ioctx, key, lease=2)

    def hold_through_native_waits():
        assert holder.try_acquire()
        try:
            deadline = time.monotonic() + holder.lease + LEASE_SLACK
            while time.monotonic() < deadline:
                if other.try_acquire():
                    other.release()
                    return 'taken by another'
                _native_sleep(0.25)
            holder.check()
            return 'held'
        finally:
            holder.release()  # in the thread that took it

    assert compat.tpool_wrap(hold_through_native_waits)() == 'held'


def test_a_lock_in_a_pool_thread_never_takes_a_waiters_wake(ioctx, key):
    """A create waiting (on the hub's thread under eventlet) for a holder
    in its own process is woken by that holder's release, even when
    maintenance took and released another lock in a thread of eventlet's
    pool meanwhile: it returns long before its 30 s wait would end.  A
    wake from the pool thread once took the waiter off the condition
    without ever switching to it (eventlet's green locks do not cross
    native threads), and the holder's wake then found nobody."""
    from cinder_rbd_bootcache.upstream import compat
    wakeups = lock.WAKEUPS
    wakeups.holding(key)  # the population's holder, on this thread
    mark = wakeups.mark(key)
    woken = []

    def create_waiting():
        woken.append(wakeups.wait(key, mark, 30))

    waiter = threading.Thread(target=create_waiting)
    waiter.start()
    try:
        time.sleep(0.2)  # it waits now

        def maintenance():
            with lock.holding(ioctx, key + '.maintenance', 30,
                              'test maintenance'):
                pass

        compat.tpool_wrap(maintenance)()
        time.sleep(0.2)
    finally:
        wakeups.let_go(key)
        waiter.join(60)
    # Woken by the holder's let_go, not at the end of its 30 s.
    assert woken == [True], woken


def test_lost_lease_is_noticed(ioctx, key):
    holder = lock.PopulationLock(ioctx, key, lease=2)
    assert holder.try_acquire()
    holder._stop.set()  # as if the holder hung: no more renewals
    holder._renewer.join()
    taker = lock.PopulationLock(ioctx, key, lease=30)
    taken = lock.acquire_or_wait(taker.try_acquire, lambda: False,
                                 timeout=LEASE_SLACK + 2, interval=0.25)
    assert taken is False
    try:
        # The renewer's next renewal finds the lease another's: it stops,
        # and the holder's next check raises.
        holder._start_renewing()
        holder._renewer.join(60)
        with pytest.raises(lock.LeaseLost):
            holder.check()
    finally:
        taker.release()


def test_killed_holder_blocks_no_longer_than_its_lease(cinder, ioctx, key):
    sandbox = cinder.sandbox
    child = subprocess.Popen([sys.executable, '-c', textwrap.dedent('''
        from cinder_rbd_bootcache.bootcache import lock
        import sys, time, rados
        cluster = rados.Rados(conffile=%r, rados_id=%r)
        cluster.connect()
        held = lock.PopulationLock(cluster.open_ioctx('volumes'), %r,
                                   lease=3)
        assert held.try_acquire()
        print('held', flush=True)
        time.sleep(600)
    ''' % (sandbox.conf_path, sandbox.client_name, key))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == 'held'
        waiter = lock.PopulationLock(ioctx, key, lease=30)
        assert not waiter.try_acquire()
        child.kill()
        child.wait()
        # Taken within the dead holder's lease and its slack, or
        # acquire_or_wait raises TimeoutError.
        finished_by_other = lock.acquire_or_wait(
            waiter.try_acquire, lambda: False, timeout=3 + LEASE_SLACK,
            interval=0.25)
        assert finished_by_other is False
        waiter.release()
    finally:
        child.kill()
        child.wait()
