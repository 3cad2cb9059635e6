"""The boot cache past the OSD's omap page, and with hosts that maintain
it at once, on real Ceph.

One omap read returns at most ``osd_max_omap_entries_per_request`` keys
(1,024 by default) and says nothing about the rest; the counters keep two
keys per entry and the index one, so a cache of more than ~500 entries
needs paged reads (``omap``).
"""

import concurrent.futures
import contextlib
import threading
import time
import uuid

import pytest

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.bootcache import counters
from cinder_rbd_bootcache.bootcache import eviction
from cinder_rbd_bootcache.bootcache import index as entry_index
from cinder_rbd_bootcache.ceph import api as ceph
from tests.functional.conftest import pool_catalog

#: Entries' worth of keys: well past the OSD's default page of 1,024.
MANY = 1150


def _set_in_pages(ioctx, obj, items):
    keys = sorted(items)
    for start in range(0, len(keys), 500):
        page = keys[start:start + 500]
        with ceph.rados.WriteOpCtx() as op:
            ioctx.set_omap(op, tuple(page), tuple(items[k] for k in page))
            ioctx.operate_write_op(op, obj)


def test_counters_of_many_entries_read_exactly(cinder):
    """2,300 counter keys: every hit count and last-use time comes back."""
    obj = 'bootcache.test-many-counters-%s' % uuid.uuid4().hex[:8]
    image_ids = ['image-%04d' % n for n in range(MANY)]
    written = {}
    for n, image_id in enumerate(image_ids):
        written[catalog.hits_key(image_id)] = str(n + 1).encode()
        written[catalog.last_used_key(image_id)] = str(
            1_700_000_000_000 + n).encode()
    with cinder.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        try:
            _set_in_pages(ioctx, obj, written)
            # What one unpaged read returns: the OSD's cap, silently.
            with ceph.rados.ReadOpCtx() as op:
                found, _ret = ioctx.get_omap_vals(op, '', '', -1)
                ioctx.operate_read_op(op, obj)
                assert len(list(found)) < len(written)
            shared = counters.Counters(ioctx, obj)
            assert shared.all() == {k: int(v) for k, v in written.items()}
            shared.update(add={catalog.hits_key(image_ids[-1]): 1})
            assert shared.all()[catalog.hits_key(image_ids[-1])] == MANY + 1
        finally:
            ioctx.remove_object(obj)


def test_index_of_many_entries_reads_exactly(clean_cinder):
    """1,150 ready records and a few others: all listed, summary exact."""
    with pool_catalog(clean_cinder) as found:
        index = found.index
        try:
            records = {('image-%04d' % n): entry_index.ReadyRecord(
                'image-%04d' % n, bytes_used=n, created=float(n))
                for n in range(MANY)}
            _set_in_pages(found.ioctx, entry_index.OBJECT, dict(
                {entry_index.READY + i: r.encode()
                 for i, r in records.items()},
                **{entry_index.COMPLETE: b'1'}))
            index.add_building(catalog.building_name('other', 'cookie'))
            index.add_trash('other', 'trash-id')
            contents = index.contents()
            assert contents.complete
            assert contents.ready == records
            assert contents.building == [
                catalog.building_name('other', 'cookie')]
            assert contents.trash == {'trash-id': 'other'}
            figures = found.summary()
            assert (figures['entries'], figures['bytes'],
                    figures['building'], figures['in_trash']) == (
                MANY, sum(range(MANY)), 1, 1)
        finally:
            found.ioctx.remove_object(entry_index.OBJECT)


def _populate(runner, backend, count):
    images = [runner.image('raw', 'file', shared=False)
              for _ in range(count)]
    for meta in images:
        result = runner.create(backend, 'populate', meta)
        # The whole outcome: a volume that is available but does not read
        # back as the image has no error, only a detail.
        assert result.ok, result
    backend.join_finishers()
    return images


def test_lost_index_is_rebuilt_from_the_pool(clean_cinder,
                                             boot_cache_backend, entries):
    runner = clean_cinder.runner
    images = _populate(runner, boot_cache_backend, 2)
    try:
        with pool_catalog(clean_cinder) as found:
            before = found.index.contents()
            assert sorted(before.ready) == sorted(m['id'] for m in images)
            found.ioctx.remove_object(entry_index.OBJECT)
            # Any reader rebuilds it, with what the entries recorded.
            assert found.summary()['entries'] == 2
            assert found.index.contents() == before
    finally:
        for meta in images:
            runner.images.delete(meta['id'])


def test_two_hosts_maintaining_at_once(clean_cinder, boot_cache_backend,
                                       entries):
    """Two hosts apply ``max_entries = 1`` at the same moment, each with
    its own connection.  One takes the cluster-wide eviction lock and
    removes three entries; the other waits for it, then finds nothing over
    the limit; neither fails; exactly one entry, the newest, stays, and
    the index and counters say so."""
    runner = clean_cinder.runner
    images = _populate(runner, boot_cache_backend, 4)
    limits = eviction.Limits(max_entries=1)
    # Last uses an hour ahead and a minute apart, in the images' order:
    # which entry stays is the test's choice, not the order in which four
    # background finishers happened to record their misses.
    first_use_ms = int(time.time() * 1000) + 3_600_000
    with pool_catalog(clean_cinder) as found:
        for n, meta in enumerate(images):
            found.counters.update(maximum={
                catalog.last_used_key(meta['id']): first_use_ms + n * 60_000})
        listed = list(found.entries())
    (newest,) = [e for e in listed if e.image_id == images[-1]['id']]

    def maintain(_host):
        with clean_cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            boot = cache.BootCache(_fixed(ioctx), None, 'volumes', 30, 30,
                                   limits)
            return boot.maintain().figures
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            figures = list(pool.map(maintain, range(2)))
        assert [f['entries'] for f in figures] == [1, 1], figures
        assert entries() == [newest.name], (
            newest.name, [(e.name, e.state, e.last_used, e.created)
                          for e in listed])
        with pool_catalog(clean_cinder) as found:
            assert list(found.index.contents().ready) == [newest.image_id]
            keys = set(found.counters.all())
        gone = [m['id'] for m in images if m['id'] != newest.image_id]
        assert not [k for k in keys if k.split('.', 1)[-1] in gone]
    finally:
        for meta in images:
            runner.images.delete(meta['id'])


def _fixed(ioctx):
    """``connect`` that hands out one open ioctx (this test's host)."""
    import contextlib

    @contextlib.contextmanager
    def connect(_pool):
        yield None, ioctx
    return connect


@pytest.mark.parametrize('rounds', [8])
def test_clones_racing_an_eviction_never_lose_their_parent(
        clean_cinder, boot_cache_backend, entries, rounds):
    """One host evicts the entry while another creates a volume from it,
    round after round.  A clone made first keeps the entry (clone format
    1 refuses the unprotect); a create that comes after the removal finds
    no entry and populates it again, and an eviction during that
    population keeps the entry (its lock is held).  Every create succeeds
    and its volume holds the image (``runner.create`` reads it back), and
    no image is left behind half removed."""
    runner = clean_cinder.runner
    (meta,) = _populate(runner, boot_cache_backend, 1)
    try:
        for _round in range(rounds):
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                create = pool.submit(runner.create, boot_cache_backend,
                                     'racing', meta)
                evict = pool.submit(_evict_all, clean_cinder)
                outcome = create.result()
                evict.result()
            assert outcome.ok, outcome
            boot_cache_backend.join_finishers()
    finally:
        runner.images.delete(meta['id'])


def _evict_all(session):
    with pool_catalog(session) as found:
        for info in found.entries(include_trash=False):
            if info.state == catalog.READY:
                with contextlib.suppress(catalog.PopulationUnderWay):
                    # Kept, as the driver's eviction keeps it.
                    found.remove(info, 'evicted by the test')


def test_a_removal_waits_for_the_images_population(clean_cinder, entries):
    """An entry is not removed while its image's population lock is held
    (a population may be renaming its new image to the entry's name, and
    librbd removes by name): without waiting the entry is kept and the
    caller told so; with a wait, it goes once the population lets go."""
    from cinder_rbd_bootcache.bootcache import lock
    import rbd
    image_id = 'populating-%s' % uuid.uuid4().hex[:8]
    name = catalog.entry_name(image_id)
    with pool_catalog(clean_cinder) as found:
        ioctx = found.ioctx
        rbd.RBD().create(ioctx, name, 4 << 20, old_format=False,
                         features=rbd.RBD_FEATURE_LAYERING)
        with rbd.Image(ioctx, name) as image:
            image.create_snap(catalog.SNAPSHOT)
            image.protect_snap(catalog.SNAPSHOT)
        described = found.entry(image_id)
        population = lock.PopulationLock(
            ioctx, catalog.lock_object(image_id), lease=30)
        assert population.try_acquire()
        try:
            with pytest.raises(catalog.PopulationUnderWay):
                found.remove(described, 'test')
            assert found.entry(image_id) is not None
            letting_go = threading.Timer(1.0, population.release)
            letting_go.start()
            assert found.remove(described, 'test',
                                wait=30) == catalog.REMOVED
            letting_go.join()
        finally:
            population.release()
        assert found.entry(image_id) is None


@pytest.mark.parametrize('with_clone', [False, True])
def test_an_entry_replaced_meanwhile_is_left_alone(clean_cinder, entries,
                                                   clone_format_2,
                                                   with_clone):
    """A host described an entry to remove it; before it removes it,
    another host removed that entry and a population published a new one
    under the same name.  The removal counts the old entry as gone and
    leaves the new one, its snapshot and its clones as they are (librbd
    removes and trashes by name, so the removal checks the image's id).
    With a clone, the entry goes to the trash (clone format 2)."""
    import rbd
    image_id = 'replaced-%s' % uuid.uuid4().hex[:8]
    name = catalog.entry_name(image_id)
    with pool_catalog(clean_cinder) as found:
        ioctx = found.ioctx

        def make_entry():
            rbd.RBD().create(ioctx, name, 4 << 20, old_format=False,
                             features=rbd.RBD_FEATURE_LAYERING)
            with rbd.Image(ioctx, name) as image:
                image.create_snap(catalog.SNAPSHOT)
                image.protect_snap(catalog.SNAPSHOT)
                return image.id()
        clone = name + '.clone'
        make_entry()
        try:
            if with_clone:
                rbd.RBD().clone(ioctx, name, catalog.SNAPSHOT, ioctx, clone,
                                features=rbd.RBD_FEATURE_LAYERING)
            described = found.entry(image_id)
            assert described.children == int(with_clone)
            if with_clone:
                # The other host trashed it (it has a clone) ...
                rbd.RBD().trash_move(ioctx, name, 0)
            else:
                found._remove_image(name)
            new_id = make_entry()  # ... and a population published anew.
            assert found.remove(described, 'test') == catalog.REMOVED
            with rbd.Image(ioctx, name) as image:
                assert image.id() == new_id
                assert image.is_protected_snap(catalog.SNAPSHOT)
        finally:
            if with_clone:
                rbd.RBD().remove(ioctx, clone)
                for item in list(rbd.RBD().trash_list(ioctx)):
                    if item['name'] == name:
                        found._remove_image(None, image_id=item['id'])
                        rbd.RBD().trash_remove(ioctx, item['id'], force=True)
            found._remove_image(name)
