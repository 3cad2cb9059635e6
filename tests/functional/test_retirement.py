"""Entries of images deleted or deactivated in Glance leave the cache:
the maintenance's catch-up (a stats refresh asking the stand-in Glance,
rate-limited) through the real driver, and a retirement while a volume
still depends on the entry."""

import time

import pytest

from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.bootcache import naming
from tests.functional import conftest

pool_catalog = conftest.pool_catalog


def stats(backend):
    """A stats refresh (the maintenance); the boot cache's figures."""
    backend.driver._update_volume_stats()
    return {key[len('bootcache_'):]: value
            for key, value in backend.driver._stats.items()
            if key.startswith('bootcache_')}


@pytest.fixture
def one_check_per_run(boot_cache_backend):
    from oslo_config import cfg
    group = boot_cache_backend.name
    cfg.CONF.set_override('bootcache_glance_checks_per_run', 1, group=group)
    yield
    cfg.CONF.clear_override('bootcache_glance_checks_per_run', group=group)


def _published_hours_ago(session, image_id, hours):
    """As if the entry had been published (and so confirmed) ``hours``
    ago: what the catch-up reads is the index's record."""
    import rbd
    with pool_catalog(session) as found:
        with rbd.Image(found._ioctx, catalog.entry_name(image_id)) as image:
            image.metadata_set(catalog.META + 'created',
                               '%.3f' % (time.time() - hours * 3600))
        found.reindex()


def _states(session):
    with pool_catalog(session) as found:
        return sorted((e.image_id, e.state, e.children)
                      for e in found.entries())


def test_catch_up_retires_entries_of_deleted_and_deactivated_images(
        clean_cinder, boot_cache_backend, entries, one_check_per_run):
    runner = clean_cinder.runner
    backend = boot_cache_backend
    gone, deactivated, active = [
        runner.image('raw', 'file', shared=False) for _ in range(3)]
    try:
        for meta in (gone, deactivated, active):
            assert runner.create(backend, 'populate', meta).ok
        backend.join_finishers()
        # A volume depends on the deactivated image's entry.
        kept = runner.create(backend, 'clone', deactivated, keep=True)
        assert kept.ok and kept.parent, kept
        # Least recently confirmed first: gone, deactivated, active.
        for hours, meta in ((4, gone), (3, deactivated), (2, active)):
            _published_hours_ago(clean_cinder, meta['id'], hours)
        runner.images.delete(gone['id'])
        runner.images.set_meta(deactivated['id'], status='deactivated')

        # One image asked per refresh: the deleted one's entry goes.
        assert stats(backend)['entries'] == 2
        assert entries() == sorted(catalog.entry_name(m['id'])
                                   for m in (deactivated, active))
        # The deactivated one's is never looked up again; its clone
        # keeps it (kept or trashed) until the volume is deleted.
        figures = stats(backend)
        assert figures['entries'] == 1
        assert figures['kept'] + figures['in_trash'] == 1
        assert entries() == [catalog.entry_name(active['id'])]
        # The active one is confirmed, and not asked about again.
        assert stats(backend)['entries'] == 1
        with pool_catalog(clean_cinder) as found:
            key = naming.confirmed_key(active['id'])
            confirmed = found.counters.get([key])[key]
        assert confirmed / 1000.0 > time.time() - 600
        assert stats(backend)['entries'] == 1
        with pool_catalog(clean_cinder) as found:
            assert found.counters.get([key])[key] == confirmed
        # The last volume gone, the next refresh removes the entry.
        backend.delete_all()
        figures = stats(backend)
        assert (figures['entries'], figures['kept'],
                figures['in_trash']) == (1, 0, 0)
        assert [s[0] for s in _states(clean_cinder)] == [active['id']]
    finally:
        for meta in (gone, deactivated, active):
            runner.images.delete(meta['id'])


def test_retired_entry_is_removed_at_once_without_clones(
        clean_cinder, boot_cache_backend, entries):
    runner = clean_cinder.runner
    backend = boot_cache_backend
    meta = runner.image('raw', 'file', shared=False)
    try:
        assert runner.create(backend, 'populate', meta).ok
        backend.join_finishers()
        boot_cache = backend.driver._boot_cache()
        assert boot_cache.retire(meta['id'], 'deleted') == catalog.REMOVED
        assert _states(clean_cinder) == []
        # Nothing to retire any more.
        assert boot_cache.retire(meta['id'], 'deleted') is None
    finally:
        runner.images.delete(meta['id'])
