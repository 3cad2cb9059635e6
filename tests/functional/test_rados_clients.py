"""The driver's shared librados clients, on the real cluster.

Every operation of the driver, upstream's ``RADOSClient`` blocks
included, opens its ioctx on one client per process; the client is
replaced when ceph.conf changes and when the cluster has blocklisted it,
and one still in use is shut down only when its operation ends.
"""

import contextlib
import json
import os

from cinder.volume.drivers import rbd as upstream_rbd
import pytest

from cinder_rbd_bootcache.ceph import clients as rados_clients


@pytest.fixture
def driver(clean_cinder):
    # Every test starts from no shared client.
    rados_clients.CLIENTS.close_all()
    yield clean_cinder.backends['ours'].driver
    rados_clients.CLIENTS.close_all()


def _instance(driver, pool=None):
    with upstream_rbd.RADOSClient(driver, pool) as client:
        return client.cluster, client.cluster.get_instance_id()


def _touch(path):
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))


@contextlib.contextmanager
def _blocklisted(sandbox, addrs):
    def blocklist(op):
        with sandbox.admin_client() as admin:
            ret, _out, err = admin.mon_command(json.dumps(
                {'prefix': 'osd blocklist', 'blocklistop': op,
                 'addr': addrs}), b'')
        assert ret == 0, err
    blocklist('add')
    try:
        yield
    finally:
        blocklist('rm')


def test_operations_of_every_pool_share_one_client(driver):
    first, first_id = _instance(driver)
    second, second_id = _instance(driver, 'images')
    assert second is first and second_id == first_id
    assert first.state == 'connected'


def test_a_changed_ceph_conf_gets_a_new_client(driver, clean_cinder):
    old, old_id = _instance(driver)
    _touch(clean_cinder.sandbox.conf_path)
    new, new_id = _instance(driver)
    assert new_id != old_id
    assert old.state == 'shutdown'
    assert new.state == 'connected'


def test_a_client_in_use_is_shut_down_when_its_operation_ends(driver,
                                                              clean_cinder):
    import rbd
    with upstream_rbd.RADOSClient(driver) as holding:
        _touch(clean_cinder.sandbox.conf_path)
        new, _new_id = _instance(driver)
        assert new is not holding.cluster
        # Retired, but its operation goes on.
        assert holding.cluster.state == 'connected'
        rbd.RBD().list(holding.ioctx)
    assert holding.cluster.state == 'shutdown'
    assert new.state == 'connected'


def test_a_blocklisted_client_fails_one_operation_then_is_replaced(
        driver, clean_cinder):
    import rbd
    client, client_id = _instance(driver)
    with _blocklisted(clean_cinder.sandbox, client.get_addrs()):
        # The operation that meets the blocklist fails as it does with
        # upstream's own client...
        with pytest.raises(rbd.ConnectionShutdown):
            with upstream_rbd.RADOSClient(driver) as blocked:
                assert blocked.cluster is client
                rbd.RBD().list(blocked.ioctx)
        assert client.state == 'shutdown'
        # ...and the next one has a new client.
        with upstream_rbd.RADOSClient(driver) as fresh:
            assert fresh.cluster.get_instance_id() != client_id
            rbd.RBD().list(fresh.ioctx)


def test_the_import_pipeline_shares_it_too(driver):
    client, _client_id = _instance(driver, 'images')
    with driver._connector()('volumes') as (ours, ioctx):
        assert ours is not client  # its own operation timeout
        assert ioctx.get_pool_name() == 'volumes'
    with driver._connector()('images') as (again, _ioctx):
        assert again is ours
