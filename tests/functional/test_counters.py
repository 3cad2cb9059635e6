"""Counters in a RADOS omap stay exact under concurrent writers with
their own connections (as cinder-volume processes on several hosts)."""

import concurrent.futures
import uuid

import pytest

from cinder_rbd_bootcache.bootcache import counters


@pytest.mark.parametrize('method', ['update', 'update_batched'])
def test_concurrent_increments_are_all_counted(cinder, method):
    """Each worker has its own connection; with ``update_batched`` the
    workers' updates of the one object are also written together (one
    process), and with both every increment counts."""
    obj = 'bootcache.test-counters-%s' % uuid.uuid4().hex[:8]

    def bump(_worker):
        with cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            shared = counters.Counters(ioctx, obj)
            for n in range(25):
                getattr(shared, method)(add={'hits': 1, 'per-image': 2},
                                        maximum={'last': n})

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(bump, range(8)))
        with cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            shared = counters.Counters(ioctx, obj)
            assert shared.all() == {'hits': 200, 'per-image': 400,
                                    'last': 24}
            assert shared.get(['hits', 'missing']) == {'hits': 200,
                                                       'missing': 0}
            shared.forget(['per-image'])
            assert 'per-image' not in shared.all()
    finally:
        with cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            ioctx.remove_object(obj)
