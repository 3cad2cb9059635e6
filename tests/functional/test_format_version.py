"""The boot cache's format version through Cinder's real flow: a pool
stamped with a format newer than this release knows is left exactly as
it is (creates import instead), said once in the log and in ``doctor``
and ``stats``; a pool as releases before the stamp leave it (no
``format`` key) is stamped at first use and its entries are cloned."""

import logging

import pytest

from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.bootcache import format_version
from cinder_rbd_bootcache.bootcache import index as entry_index
from tests.functional import conftest
from tests.functional.test_cli import cli  # noqa: F401  (fixture)

LOGGER = 'cinder_rbd_bootcache.bootcache.format_version'


def _state(session):
    """Everything of the cache in the pool: the index's and the counters'
    omaps, its RADOS objects (locks among them), and every RBD image of
    the cache with its metadata and snapshots."""
    import rbd
    with conftest.pool_catalog(session) as found:
        omaps = {obj: dict(_omap(found.ioctx, obj))
                 for obj in (entry_index.OBJECT, catalog.COUNTERS_OBJECT)}
        objects = sorted(o.key for o in found.ioctx.list_objects()
                         if o.key.startswith(catalog.PREFIX))
        images = {}
        for name in rbd.RBD().list(found.ioctx):
            if catalog.parse_name(name) is None:
                continue
            with rbd.Image(found.ioctx, name, read_only=True) as image:
                images[name] = (sorted(image.metadata_list()),
                                sorted(s['name'] for s in image.list_snaps()))
    return omaps, objects, images


def _omap(ioctx, obj):
    from cinder_rbd_bootcache.ceph import omap
    return omap.items(ioctx, obj)


def _set_format(session, value):
    """Set (bytes) or remove (None) the pool's format key, as another
    release or an operator would."""
    if value is None:
        _remove_key(session, format_version.KEY)
        return
    import rados
    with conftest.pool_catalog(session) as found, \
            rados.WriteOpCtx() as op:
        found.ioctx.set_omap(op, (format_version.KEY,), (value,))
        found.ioctx.operate_write_op(op, entry_index.OBJECT)


def _remove_key(session, key):
    import rados
    with conftest.pool_catalog(session) as found, \
            rados.WriteOpCtx() as op:
        found.ioctx.remove_omap_keys(op, (key,))
        found.ioctx.operate_write_op(op, entry_index.OBJECT)


def _refresh(backend):
    """A stats refresh of cinder-volume (which is when the cache applies
    its limits and reads its format again); the boot cache's stats."""
    backend.driver._update_volume_stats()
    return {key[len('bootcache_'):]: value
            for key, value in backend.driver._stats.items()
            if key.startswith('bootcache_')}


def test_a_newer_format_is_bypassed_and_left_as_it_is(
        clean_cinder, boot_cache_backend, entries, cli, caplog):  # noqa
    caplog.set_level(logging.INFO, logger=LOGGER)
    runner = clean_cinder.runner
    cached = runner.image('raw', 'file', shared=False)
    other = runner.image('raw', 'file', shared=False)
    try:
        assert runner.create(boot_cache_backend, 'miss', cached).ok
        boot_cache_backend.join_finishers()
        golden = entries()
        assert golden == [catalog.entry_name(cached['id'])]
        # What a future release leaves: format 2, and an index without
        # "complete", which this release would rebuild (a write) if it
        # used the cache.
        _set_format(clean_cinder, b'2')
        _remove_key(clean_cinder, entry_index.COMPLETE)
        before = _state(clean_cinder)
        try:
            figures = _refresh(boot_cache_backend)
            assert (figures['format'], figures['bypassed']) == (2, 1)
            assert 'entries' not in figures
            outcomes = [runner.create(boot_cache_backend, 'bypass', meta)
                        for meta in (cached, other, cached)]
            # An encrypted volume: upstream's conversion, not the cache.
            outcomes.append(runner.create(boot_cache_backend, 'luks',
                                          cached, volume_type='luks'))
            boot_cache_backend.join_finishers()
            _refresh(boot_cache_backend)
            assert _state(clean_cinder) == before
            code, rows, err = cli('doctor')
            code_stats, fields, err_stats = cli('stats')
        finally:
            _set_format(clean_cinder, b'1')
            figures = _refresh(boot_cache_backend)
    finally:
        for meta in (cached, other):
            runner.images.delete(meta['id'])
    # Each create imported its image into the volume (the encrypted one
    # through upstream's LUKS conversion): no clone, one download each,
    # bytes verified.
    assert [(o.ok, o.parent, o.downloads) for o in outcomes] == \
        [(True, None, 1)] * 4, outcomes
    warnings = [r.getMessage() for r in caplog.records
                if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert ('pool volumes is in format 2, and this host knows format 1'
            in warnings[0])
    assert 'Upgrade cinder-rbd-bootcache on this host' in warnings[0]
    # Known again once the key says so: used (and the index rebuilt).
    assert (figures['format'], figures['bypassed'],
            figures['entries']) == (1, 0, 1)

    assert code == 1, err
    (row,) = [r for r in rows if r['Check'] == 'boot-cache format']
    assert row['Result'] == 'error' and 'format 2' in row['Detail']
    assert code_stats == 0, err_stats
    assert (fields['Format'], fields['Bypassed']) == ('2', True)
    assert 'Entries' not in fields


@pytest.mark.parametrize('first_use', ['create', 'stats refresh'])
def test_an_unversioned_pool_is_stamped_and_its_entries_cloned(
        clean_cinder, boot_cache_backend, entries, first_use):
    runner = clean_cinder.runner
    meta = runner.image('raw', 'file', shared=False)
    golden = 'volumes/%s@%s' % (catalog.entry_name(meta['id']),
                                catalog.SNAPSHOT)
    try:
        assert runner.create(boot_cache_backend, 'miss', meta).ok
        boot_cache_backend.join_finishers()
        # As 0.3.0 to 0.6.0 leave a pool (entries, index, counters, no
        # format), met by a host of this release that just started.
        _set_format(clean_cinder, None)
        del boot_cache_backend.driver.bootcache_formats
        if first_use == 'stats refresh':
            assert _refresh(boot_cache_backend)['format'] == 1
        hit = runner.create(boot_cache_backend, 'hit', meta)
    finally:
        runner.images.delete(meta['id'])
    assert (hit.ok, hit.parent, hit.downloads) == (True, golden, 0), hit
    with conftest.pool_catalog(clean_cinder) as found:
        assert format_version.read(found.ioctx) == b'1'
        # A rebuild of the index keeps the stamp.
        found.reindex()
        assert format_version.read(found.ioctx) == b'1'
