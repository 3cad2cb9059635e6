"""The embedded Ceph: a second sandbox beside the session's, then gone."""

import hashlib
import os

from oslo_utils import units
import pytest

from bootcache_testkit.sandbox import Sandbox
from bootcache_testkit.sandbox import SandboxError


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


def test_clone_format_follows_min_compat_client(clean_cinder):
    """librbd's default clone format ("auto") on the sandbox: 1 with its
    luminous min compat client, 2 with BOOTCACHE_SANDBOX_MIN_COMPAT=mimic
    (or newer).  So the clone-format-2 cell really clones in format 2."""
    import rbd
    from tests.functional import conftest
    expected = conftest.default_clone_format(clean_cinder)
    with clean_cinder.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        api = rbd.RBD()
        api.create(ioctx, 'clone-format-parent', 4 << 20, old_format=False,
                   features=rbd.RBD_FEATURE_LAYERING)
        try:
            with rbd.Image(ioctx, 'clone-format-parent') as parent:
                parent.create_snap('snap')
                parent.protect_snap('snap')
            api.clone(ioctx, 'clone-format-parent', 'snap', ioctx,
                      'clone-format-child',
                      features=rbd.RBD_FEATURE_LAYERING)
            with rbd.Image(ioctx, 'clone-format-child') as child:
                v2 = bool(child.op_features() &
                          rbd.RBD_OPERATION_FEATURE_CLONE_CHILD)
            assert (2 if v2 else 1) == expected
        finally:
            for name in ('clone-format-child', 'clone-format-parent'):
                try:
                    with rbd.Image(ioctx, name) as image:
                        for snap in list(image.list_snaps()):
                            if image.is_protected_snap(snap['name']):
                                image.unprotect_snap(snap['name'])
                            image.remove_snap(snap['name'])
                except rbd.ImageNotFound:
                    continue
                api.remove(ioctx, name)


@pytest.mark.skipif(os.environ.get('BOOTCACHE_FAULT_TESTS') == 'off',
                    reason='BOOTCACHE_FAULT_TESTS=off: the fault tests\' '
                           'sandbox is tested where they run')
def test_a_bluestore_osd_survives_a_kill_and_a_restart(cinder, tmp_path):
    """The fault tests' sandbox: its OSD, killed with SIGKILL mid-way
    through a run of writes and started again, has every write it
    acknowledged, and the monitor restarts too."""
    import rados
    import rbd
    sandbox = Sandbox(str(tmp_path / 'bluestore'), objectstore='bluestore',
                      memstore_bytes=2 * units.Gi, pools=('volumes',))
    with sandbox:
        block = os.urandom(units.Mi)
        with sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            rbd.RBD().create(ioctx, 'survivor', 8 * units.Mi)
            with rbd.Image(ioctx, 'survivor') as image:
                for index in range(4):
                    image.write(block, index * units.Mi)
        old_pid = sandbox.daemon_pids()['osd.0']
        sandbox.kill_daemon('osd.0')
        assert 'osd.0' not in sandbox.daemon_pids()
        sandbox.start_daemon('osd.0')
        assert sandbox.daemon_pids()['osd.0'] != old_pid
        sandbox.kill_daemon('mon.a')
        sandbox.start_daemon('mon.a')
        with sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            with rbd.Image(ioctx, 'survivor', read_only=True) as image:
                data = image.read(0, 4 * units.Mi)
            assert hashlib.sha256(data).digest() == \
                hashlib.sha256(block * 4).digest()
            rbd.RBD().remove(ioctx, 'survivor')
            with pytest.raises(rados.ObjectNotFound):
                ioctx.stat('rbd_header.nonexistent')
    assert not os.path.exists(sandbox.directory)


def test_a_memstore_osd_is_not_restarted(cinder):
    """Restarting a memstore OSD would bring back an empty cluster that
    the monitor still believes holds data: refused with the reason."""
    with pytest.raises(SandboxError, match='bluestore'):
        cinder.sandbox.start_daemon('osd.0')
