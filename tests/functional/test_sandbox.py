"""The embedded Ceph: a second sandbox beside the session's, then gone."""

import os

from bootcache_testkit.sandbox import Sandbox


def test_two_sandboxes_run_at_once_and_down_leaves_nothing(cinder, tmp_path):
    first = cinder.sandbox
    second = Sandbox(str(tmp_path / 'second'))
    with second:
        assert second.info()['mon_port'] != first.info()['mon_port']
        assert second.fsid != first.fsid
        pids = second.daemon_pids()
        assert sorted(pids) == ['mgr.x', 'mon.a', 'osd.0']
        with second.client() as cluster:
            assert {'volumes', 'images'} <= set(cluster.list_pools())
    for pid in pids.values():
        assert not os.path.exists('/proc/%d' % pid) or \
            open('/proc/%d/stat' % pid).read().split()[2] == 'Z'
    assert not os.path.exists(second.directory)
    # The session's cluster is untouched.
    assert sorted(first.daemon_pids()) == ['mgr.x', 'mon.a', 'osd.0']
