"""The population lease on the sandbox's RADOS: exclusive, renewed while
held, and free again once a killed holder's lease runs out."""

import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from cinder_rbd_bootcache import lock


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


def test_lost_lease_is_noticed(ioctx, key):
    holder = lock.PopulationLock(ioctx, key, lease=2)
    assert holder.try_acquire()
    holder._stop.set()  # as if the holder hung: no more renewals
    holder._renewer.join()
    taker = lock.PopulationLock(ioctx, key, lease=30)
    assert lock.acquire_or_wait(taker.try_acquire, lambda: False,
                                timeout=LEASE_SLACK + 2, interval=0.25) is False
    try:
        with pytest.raises(lock.LeaseLost):
            holder.renew()
    finally:
        taker.release()


def test_killed_holder_blocks_no_longer_than_its_lease(cinder, ioctx, key):
    sandbox = cinder.sandbox
    child = subprocess.Popen([sys.executable, '-c', textwrap.dedent('''
        import sys, time, rados
        from cinder_rbd_bootcache import lock
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
        killed = time.monotonic()
        finished_by_other = lock.acquire_or_wait(
            waiter.try_acquire, lambda: False, timeout=20, interval=0.25)
        waited = time.monotonic() - killed
        assert finished_by_other is False
        assert waited <= 3 + LEASE_SLACK, waited
        waiter.release()
    finally:
        child.kill()
        child.wait()
