"""Clones of clones, through Cinder's real manager calls, on real Ceph.

``create_cloned_volume`` at the clone-depth limit and the delete of
volumes in the middle of a clone chain: the paths where our overrides
release or flatten what upstream's leave alone.  Every test ends with the
volumes pool empty (the clean_cinder fixture checks), so a clone snapshot
nobody released, or a ``volume-*.deleted`` kept for ever, fails it.
"""

import os

import pytest

from bootcache_testkit.harness import cinder_process
from bootcache_testkit.harness import scenarios

DATA = os.urandom(64 * 1024)
DATA_OFFSET = 4 * 1024 * 1024


@pytest.fixture(scope='module')
def chain_backends(cinder):
    backends = {limit: cinder_process.BackendUnderTest(
        cinder.process, 'chain_depth%d' % limit, cinder_process.OUR_DRIVER,
        bootcache_enabled=False, rbd_max_clone_depth=limit)
        for limit in (1, 5)}
    yield backends
    for backend in backends.values():
        backend.delete_all()


def _rbd(cinder, fn):
    import rbd
    with cinder.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        return fn(rbd, ioctx)


def _parent(cinder, volume):
    """The RBD image ``volume`` is a clone of, without its snapshot."""
    parent = _rbd(cinder, lambda rbd, ioctx: scenarios.parent_of(
        ioctx, volume.name))
    return parent.split('/', 1)[1].split('@')[0] if parent else None


def _snapshots(cinder, volume):
    def names(rbd, ioctx):
        with rbd.Image(ioctx, volume.name, read_only=True) as image:
            return [snap['name'] for snap in image.list_snaps()]
    return _rbd(cinder, names)


def _images(cinder):
    return sorted(_rbd(cinder, lambda rbd, ioctx: rbd.RBD().list(ioctx)))


def _volume_with_data(cinder, backend):
    """A plain 1 GiB volume with DATA at DATA_OFFSET."""
    volume = backend.new_volume(1)
    backend.manager.create_volume(cinder.process.context(), volume,
                                  allow_reschedule=False)
    volume.refresh()
    assert volume.status == 'available', volume.status

    def write(rbd, ioctx):
        with rbd.Image(ioctx, volume.name) as image:
            image.write(DATA, DATA_OFFSET)
    _rbd(cinder, write)
    return volume


def _data_of(cinder, volume, snapshot=None):
    def read(rbd, ioctx):
        with rbd.Image(ioctx, volume.name, snapshot=snapshot,
                       read_only=True) as image:
            return image.read(DATA_OFFSET, len(DATA))
    return _rbd(cinder, read)


def _clone(backend, source):
    result = backend.create_from_volume(source)
    assert result.ok, (result.volume.status, result.error)
    return result.volume


def test_temporary_clone_at_the_limit_leaves_the_source_alone(
        clean_cinder, chain_backends):
    """A backup of an in-use volume at the clone-depth limit: Cinder's
    synchronous get_backup_device makes a temporary clone; nothing is
    flattened (neither the source nor the clone), as upstream."""
    backend = chain_backends[1]
    try:
        base = _volume_with_data(clean_cinder, backend)
        source = _clone(backend, base)          # depth 1: at the limit
        source.status = 'in-use'
        source.save()
        device = backend.backup_device(source)
        assert not device.use_quota
        assert device.id != source.id
        assert _parent(clean_cinder, source) == base.name
        assert _parent(clean_cinder, device) == source.name
        assert _data_of(clean_cinder, device) == DATA
    finally:
        backend.delete_all()


@pytest.mark.parametrize('order', [('mid', 'leaf', 'base'),
                                   ('mid', 'base', 'leaf')],
                         ids=['leaf-then-base', 'base-then-leaf'])
def test_delete_of_a_clone_that_has_clones(clean_cinder, chain_backends,
                                           order):
    """base <- mid <- leaf; mid is deleted first.  Upstream keeps it as
    mid.deleted (leaf needs it); the chain's last delete removes every
    image, whichever of base and leaf goes last."""
    backend = chain_backends[5]
    try:
        volumes = {'base': _volume_with_data(clean_cinder, backend)}
        volumes['mid'] = _clone(backend, volumes['base'])
        volumes['leaf'] = _clone(backend, volumes['mid'])
        assert _parent(clean_cinder, volumes['leaf']) == volumes['mid'].name
        assert _parent(clean_cinder, volumes['mid']) == volumes['base'].name
        for name in order:
            backend.delete(volumes[name])  # raises if the driver failed
            if name == 'mid':
                assert '%s.deleted' % volumes['mid'].name in _images(
                    clean_cinder)
                assert _data_of(clean_cinder, volumes['leaf']) == DATA
        assert _images(clean_cinder) == []
    finally:
        backend.delete_all()


def test_source_with_snapshots_at_the_limit(clean_cinder, chain_backends):
    """A source at the limit that has a Cinder snapshot: the new volume is
    made (upstream's row: flattened itself), the source stays a clone, and
    everything can be deleted afterwards."""
    backend = chain_backends[1]
    snapshot = None
    try:
        base = _volume_with_data(clean_cinder, backend)
        source = _clone(backend, base)          # depth 1: at the limit
        snapshot = backend.create_snapshot(source)
        assert snapshot.status == 'available', snapshot.status
        new = _clone(backend, source)
        # The snapshot still reads through its link to base, and base
        # keeps the clone snapshot that link needs.
        assert _data_of(clean_cinder, source, snapshot.name) == DATA
        assert '%s.clone_snap' % source.name in _snapshots(clean_cinder, base)
        assert _parent(clean_cinder, source) == base.name
        assert _data_of(clean_cinder, new) == DATA
        assert _parent(clean_cinder, new) is None
        backend.delete(new)
        backend.delete_snapshot(snapshot)
        snapshot = None
        backend.delete(source)
        backend.delete(base)
        assert _images(clean_cinder) == []
    finally:
        if snapshot is not None:
            backend.delete_snapshot(snapshot)
        backend.delete_all()


@pytest.fixture(scope='module')
def images_pool_backend(cinder):
    """A second backend of the same cluster, volumes in pool 'images'."""
    backend = cinder_process.BackendUnderTest(
        cinder.process, 'chain_images', cinder_process.OUR_DRIVER,
        pool='images', bootcache_enabled=False)
    yield backend
    backend.delete_all()


def test_migration_of_a_clone_that_has_clones(clean_cinder, chain_backends,
                                              images_pool_backend):
    """RBD-assisted migration to another pool copies the volume, then
    deletes the source: a clone with clones of its own is kept as
    .deleted for them, and the chain still goes away with its last delete.
    """
    backend, target = chain_backends[5], images_pool_backend
    try:
        base = _volume_with_data(clean_cinder, backend)
        mid = _clone(backend, base)
        leaf = _clone(backend, mid)
        stats = target.driver.get_volume_stats(refresh=True)
        host = {'host': '%s#%s' % (target.host, target.name),
                'capabilities': stats}
        backend.manager.migrate_volume(backend.process.context(), mid, host)
        mid.refresh()
        assert (mid.migration_status, mid.host) == ('success', host['host'])
        assert '%s.deleted' % mid.name in _images(clean_cinder)
        assert _data_of(clean_cinder, leaf) == DATA

        def moved(rbd, ioctx):
            with rbd.Image(ioctx, mid.name, read_only=True) as image:
                return image.read(DATA_OFFSET, len(DATA))
        with clean_cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('images') as ioctx:
            import rbd
            assert moved(rbd, ioctx) == DATA
        target.delete(mid)
        backend.delete(leaf)
        backend.delete(base)
        assert _images(clean_cinder) == []
    finally:
        target.delete_all()
        backend.delete_all()
