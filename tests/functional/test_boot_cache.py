"""The boot cache through the real flow: no internal tenant needed (the
backend has no image-volume cache), one download per image, every volume a
depth-1 clone of the entry's golden snapshot, bytes verified."""

import concurrent.futures

import pytest

from cinder_rbd_bootcache import cache
from cinder_rbd_bootcache.harness import flow


@pytest.fixture(scope='module')
def boot_cache_backend(cinder):
    backend = flow.Backend(cinder.process, 'bootcache', flow.OUR_DRIVER,
                           bootcache_enabled=True)
    yield backend
    backend.delete_all()


@pytest.fixture
def entries(clean_cinder, boot_cache_backend):
    """Entry names left in the pool; removes them after the test (the
    cache keeps entries by design; clean_cinder then checks the pool)."""
    import rbd

    def names():
        with clean_cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            return [n for n in rbd.RBD().list(ioctx)
                    if n.startswith(cache.PREFIX)]
    yield names
    boot_cache_backend.delete_all()
    with clean_cinder.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        for name in names():
            with rbd.Image(ioctx, name) as image:
                image.unprotect_snap(cache.SNAPSHOT)
                image.remove_snap(cache.SNAPSHOT)
            rbd.RBD().remove(ioctx, name)


@pytest.mark.parametrize('disk_format', ['raw', 'qcow2'])
def test_first_create_populates_then_every_create_clones(
        clean_cinder, boot_cache_backend, entries, disk_format):
    runner = clean_cinder.runner
    meta = runner.image(disk_format, 'file', shared=False)
    golden = 'volumes/%s@%s' % (cache.entry_name(meta['id']), cache.SNAPSHOT)
    try:
        first = runner.create(boot_cache_backend, 'miss', meta)
        second = runner.create(boot_cache_backend, 'hit', meta)
    finally:
        runner.images.delete(meta['id'])
    for outcome in (first, second):
        assert outcome.ok, outcome
        assert outcome.parent == golden
    assert (first.downloads, second.downloads) == (1, 0)
    assert entries() == [cache.entry_name(meta['id'])]


def test_ten_creates_at_once_download_once(clean_cinder, boot_cache_backend,
                                           entries):
    """Ten concurrent clone_image calls of the driver for one uncached
    image: one download, ten clones of one entry, bytes verified.

    The driver is called directly, one thread per volume: the harness's
    sqlite database cannot take concurrent writers ("database is locked"
    on lock upgrade), and clone_image itself writes nothing to it.
    """
    from cinder_rbd_bootcache.harness import scenarios
    from cinder_rbd_bootcache.harness import verify
    runner = clean_cinder.runner
    backend = boot_cache_backend
    meta = runner.images.add(runner.disk('raw')[0], 'raw')
    context = clean_cinder.process.context()
    volumes = [backend.new_volume(1) for _ in range(10)]
    try:
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(
                lambda v: backend.driver.clone_image(
                    context, v, (None, []), runner.images.show(None, meta['id']),
                    runner.images), volumes))
        assert all(cloned for _update, cloned in results)
        assert runner.images.downloads[meta['id']] == 1
        raw = runner.disk('raw')[1]
        with clean_cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            for volume in volumes:
                ok, detail = verify.volume_matches(ioctx, volume.name, raw,
                                                   meta['size'])
                assert ok, detail
                assert scenarios.parent_of(ioctx, volume.name) == \
                    'volumes/%s@%s' % (cache.entry_name(meta['id']),
                                       cache.SNAPSHOT)
    finally:
        for volume in volumes:
            backend.delete(volume)
        runner.images.delete(meta['id'])
