"""The boot cache through the real flow: no internal tenant needed (the
backend has no image-volume cache), one download per image, bytes
verified.  The create that populates an entry gets its volume filled in
the same pass (it is no clone: it never waits for the entry's snapshot);
every other volume is a depth-1 clone of the entry's golden snapshot."""

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

from oslo_utils import units
import pytest

from bootcache_testkit.harness import cinder_process
from bootcache_testkit.harness import disk_images
from cinder_rbd_bootcache.bootcache import catalog
from tests.functional import conftest

LEASE = conftest.BOOT_CACHE_LEASE
pool_catalog = conftest.pool_catalog


@pytest.fixture
def configure(boot_cache_backend):
    """Override options of the boot-cache backend for one test."""
    from oslo_config import cfg
    changed = []

    def set_options(**options):
        for key, value in options.items():
            cfg.CONF.set_override(key, value, group=boot_cache_backend.name)
            changed.append(key)
    yield set_options
    for key in changed:
        cfg.CONF.clear_override(key, group=boot_cache_backend.name)


def stats(backend):
    backend.driver._update_volume_stats()
    return {key[len('bootcache_'):]: value
            for key, value in backend.driver._stats.items()
            if key.startswith('bootcache_')}


@pytest.mark.parametrize('disk_format,store,downloads', [
    ('raw', 'file', 1),
    # Staged in RBD, converted into the volume, then into the entry.
    ('qcow2', 'file', 1),
    # Converted from Glance's rbd-store snapshot into both: no download.
    ('qcow2', 'rbd', 0),
])
def test_first_create_populates_then_every_create_clones(
        clean_cinder, boot_cache_backend, entries, disk_format, store,
        downloads):
    runner = clean_cinder.runner
    meta = runner.image(disk_format, store, shared=False)
    golden = 'volumes/%s@%s' % (catalog.entry_name(meta['id']),
                                catalog.SNAPSHOT)
    try:
        first = runner.create(boot_cache_backend, 'miss', meta)
        second = runner.create(boot_cache_backend, 'hit', meta)
    finally:
        runner.images.delete(meta['id'])
    assert first.ok and second.ok, (first, second)
    assert (first.parent, second.parent) == (None, golden)
    assert (first.downloads, second.downloads) == (downloads, 0)
    assert entries() == [catalog.entry_name(meta['id'])]
    # No staging image outlives the population.
    with pool_catalog(clean_cinder) as found:
        assert [e.state for e in found.entries()] == [catalog.READY]


def test_ten_creates_at_once_download_once(clean_cinder, boot_cache_backend,
                                           entries):
    """Ten concurrent clone_image calls of the driver for one uncached
    image: one download, ten clones of one entry, bytes verified.

    The driver is called directly, one thread per volume: the harness's
    sqlite database cannot take concurrent writers ("database is locked"
    on lock upgrade), and clone_image itself writes nothing to it.
    """
    from bootcache_testkit.harness import scenarios
    from bootcache_testkit.harness import verify
    runner = clean_cinder.runner
    backend = boot_cache_backend
    meta = runner.images.add(runner.disk('raw')[0], 'raw')
    context = clean_cinder.process.context()
    volumes = [backend.new_volume(1) for _ in range(10)]
    try:
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(
                lambda v: backend.driver.clone_image(
                    context, v, (None, []),
                    runner.images.show(None, meta['id']),
                    runner.images), volumes))
        assert all(cloned for _update, cloned in results)
        assert runner.images.downloads[meta['id']] == 1
        raw = runner.disk('raw')[1]
        golden = 'volumes/%s@%s' % (catalog.entry_name(meta['id']),
                                    catalog.SNAPSHOT)
        parents = []
        with clean_cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            for volume in volumes:
                ok, detail = verify.volume_matches(ioctx, volume.name, raw,
                                                   meta['size'])
                assert ok, detail
                parents.append(scenarios.parent_of(ioctx, volume.name))
        # The populating create's volume was filled with the entry.
        assert sorted(parents, key=str) == [None] + [golden] * 9, parents
    finally:
        for volume in volumes:
            backend.delete(volume)
        runner.images.delete(meta['id'])


def test_hits_and_misses_are_counted_and_reported_in_stats(
        clean_cinder, boot_cache_backend, entries):
    runner = clean_cinder.runner
    meta = runner.image('raw', 'file', shared=False)
    try:
        outcomes = [runner.create(boot_cache_backend, 'create', meta)
                    for _ in range(3)]
    finally:
        runner.images.delete(meta['id'])
    assert all(o.ok for o in outcomes), outcomes
    boot_cache_backend.join_finishers()
    figures = stats(boot_cache_backend)
    with pool_catalog(clean_cinder) as found:
        info = found.entry(meta['id'])
    assert (figures['entries'], figures['hits'], figures['misses']) == \
        (1, 2, 1)
    assert figures['bytes'] == info.bytes_used
    # Sparse: only the objects holding the image's data count.
    assert 0 < info.bytes_used < meta['virtual_size']
    assert info.hits == 2 and info.last_used >= info.created
    assert info.metadata['os_hash_value'] == meta['os_hash_value']
    assert info.metadata['image_id'] == meta['id']
    assert float(info.metadata['populate_seconds']) > 0


def _images(runner, count):
    return [runner.image('raw', 'file', shared=False) for _ in range(count)]


def _kept_clone(runner, backend, meta, name):
    """A kept volume that is a clone of the image's entry.  The create
    that populates the entry is filled in the same pass (no clone); the
    next one clones the finished entry."""
    assert runner.create(backend, name + ' (populates)', meta).ok
    backend.join_finishers()
    kept = runner.create(backend, name, meta, keep=True)
    assert kept.ok and kept.parent, kept
    return kept


def _states(session):
    with pool_catalog(session) as found:
        return sorted((e.image_id, e.state, e.children)
                      for e in found.entries())


def test_least_recently_used_entry_goes_first_even_with_clones(
        clean_cinder, boot_cache_backend, entries, configure, clone_format_1):
    """Clone format 1 (the sandbox's default, forced here for the cells
    with a newer min compat client): the least recently used entry goes
    over the limit although it has a clone: it is kept for the clone, no
    longer counted, and removed by the first maintenance after the clone
    is deleted."""
    runner = clean_cinder.runner
    configure(bootcache_max_entries=2)
    a, b, c = _images(runner, 3)
    try:
        _kept_clone(runner, boot_cache_backend, a, 'a')
        assert runner.create(boot_cache_backend, 'b', b).ok
        # Limits apply when an entry is finished, in the background, and
        # the finisher keeps its own new entry: b's must be done before c
        # is made, or (seen under load) c's finishes first, within the
        # limit, and b's then evicts c.
        boot_cache_backend.join_finishers()
        assert runner.create(boot_cache_backend, 'c', c).ok
        boot_cache_backend.join_finishers()
        assert entries() == sorted([catalog.entry_name(b['id']),
                                    catalog.entry_name(c['id'])])
        assert (a['id'], catalog.KEPT, 1) in _states(clean_cinder)
        boot_cache_backend.delete_all()
        configure(bootcache_max_entries=1)
        figures = stats(boot_cache_backend)
        assert (figures['entries'], figures['kept']) == (1, 0)
        assert entries() == [catalog.entry_name(c['id'])]
        assert _states(clean_cinder) == [(c['id'], catalog.READY, 0)]
    finally:
        for meta in (a, b, c):
            runner.images.delete(meta['id'])


def test_two_finishers_at_once_evict_one_entry_not_two(
        clean_cinder, boot_cache_backend, entries, configure, monkeypatch):
    """Two populations finish together over the limit: each applies the
    limits keeping its own new entry.  Without the eviction lock both
    listed the same three entries and each removed the other's (one entry
    under the limit; seen once in the LRU test).  A barrier in the listing
    makes them meet there unless one waits for the other."""
    import threading
    runner = clean_cinder.runner
    a, b, c = _images(runner, 3)
    try:
        for meta in (a, b, c):
            assert runner.create(boot_cache_backend, 'x', meta).ok
        boot_cache_backend.join_finishers()
        assert len(entries()) == 3
        configure(bootcache_max_entries=2)
        barrier = threading.Barrier(2)
        listing = catalog.Catalog.indexed

        def entries_after_barrier(self, *args, **kwargs):
            try:
                barrier.wait(timeout=2)
            except threading.BrokenBarrierError:
                pass  # the other evictor holds the lock: it did not come
            return listing(self, *args, **kwargs)
        monkeypatch.setattr(catalog.Catalog, 'indexed',
                            entries_after_barrier)
        boot = boot_cache_backend.driver._boot_cache()

        def evict(keep):
            with pool_catalog(clean_cinder) as found:
                boot._evict(found, keep=[keep])
        # Each keeps one of the two least recently used entries (as a
        # finisher keeps its new one), so each would remove the other's.
        threads = [threading.Thread(target=evict, args=(m['id'],))
                   for m in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        monkeypatch.setattr(catalog.Catalog, 'indexed', listing)
        assert len(entries()) == 2
    finally:
        for meta in (a, b, c):
            runner.images.delete(meta['id'])


@pytest.mark.parametrize('clone_format, outcome', [
    ('clone_format_1', catalog.KEPT), ('clone_format_2', catalog.TRASHED)])
def test_evicted_entry_with_a_clone_goes_with_its_last_clone(
        clean_cinder, boot_cache_backend, entries, request, clone_format,
        outcome):
    """An entry evicted (as ``cinder-rbd-bootcache evict`` does) while a
    volume is a clone of it is kept (clone format 1) or trashed (format
    2); either way no create clones it again (the next one populates a
    new entry), and once the volume is deleted the next maintenance (a
    stats refresh) removes it."""
    request.getfixturevalue(clone_format)
    runner = clean_cinder.runner
    (a,) = _images(runner, 1)
    try:
        _kept_clone(runner, boot_cache_backend, a, 'a')
        with pool_catalog(clean_cinder) as found:
            evicted = found.remove(found.entry(a['id']), 'test eviction')
        assert evicted == outcome
        assert entries() == []
        assert stats(boot_cache_backend)['entries'] == 0
        # Not cloned: the next create downloads and populates anew.
        again = runner.create(boot_cache_backend, 'after eviction', a)
        assert (again.ok, again.parent, again.downloads) == (
            True, None, 1), again
        boot_cache_backend.join_finishers()
        assert entries() == [catalog.entry_name(a['id'])]
        old_state = catalog.KEPT if outcome == catalog.KEPT else \
            catalog.IN_TRASH
        assert _states(clean_cinder) == sorted([
            (a['id'], catalog.READY, 0), (a['id'], old_state, 1)])
        # A maintenance while the clone lives keeps it.
        stats(boot_cache_backend)
        assert len(_states(clean_cinder)) == 2
        boot_cache_backend.delete_all()
        figures = stats(boot_cache_backend)
        assert (figures['entries'], figures['kept'],
                figures['in_trash']) == (1, 0, 0)
        assert _states(clean_cinder) == [(a['id'], catalog.READY, 0)]
    finally:
        runner.images.delete(a['id'])


def test_evicted_entry_with_format_2_clones_waits_in_the_trash(
        clean_cinder, boot_cache_backend, entries, configure, clone_format_2):
    runner = clean_cinder.runner
    configure(bootcache_max_entries=1)
    a, b = _images(runner, 2)
    try:
        _kept_clone(runner, boot_cache_backend, a, 'a')
        assert runner.create(boot_cache_backend, 'b', b).ok
        boot_cache_backend.join_finishers()
        assert entries() == [catalog.entry_name(b['id'])]
        with pool_catalog(clean_cinder) as found:
            trashed = [e for e in found.entries()
                       if e.state == catalog.IN_TRASH]
        assert [(e.image_id, e.children, e.clone_format_2)
                for e in trashed] == [(a['id'], 1, True)]
        # The clone still reads the image from its parent in the trash.
        from bootcache_testkit.harness import verify
        with clean_cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            volume = boot_cache_backend.volumes()[-1]
            ok, detail = verify.volume_matches(
                ioctx, volume.name, runner.disk('raw')[1], a['size'])
        assert ok, detail
        assert stats(boot_cache_backend)['in_trash'] == 1
        boot_cache_backend.delete_all()
        assert stats(boot_cache_backend)['in_trash'] == 0
    finally:
        for meta in (a, b):
            runner.images.delete(meta['id'])


def test_idle_entry_goes_when_stats_refresh(
        clean_cinder, boot_cache_backend, entries, configure):
    runner = clean_cinder.runner
    configure(bootcache_max_idle_hours=1)
    meta = runner.image('raw', 'file', shared=False)
    try:
        assert runner.create(boot_cache_backend, 'a', meta).ok
        boot_cache_backend.join_finishers()
        assert stats(boot_cache_backend)['entries'] == 1
        # Two hours ago: its creation and its last use.
        with pool_catalog(clean_cinder) as found:
            import rbd
            with rbd.Image(found._ioctx, catalog.entry_name(meta['id'])) as im:
                im.metadata_set(catalog.META + 'created',
                                '%.3f' % (time.time() - 7200))
            found.counters.forget([catalog.last_used_key(meta['id'])])
            # The index records what the entry recorded when published.
            found.reindex()
        assert stats(boot_cache_backend)['entries'] == 0
        assert entries() == []
    finally:
        runner.images.delete(meta['id'])


def test_entry_no_longer_matching_glance_is_replaced(
        clean_cinder, boot_cache_backend, entries, tmp_path):
    runner = clean_cinder.runner
    meta = runner.image('raw', 'file', shared=False)
    changed = tmp_path / 'changed.raw'
    changed.write_bytes(os.urandom(4 << 20))
    try:
        assert runner.create(boot_cache_backend, 'old', meta).ok
        boot_cache_backend.join_finishers()
        # The image's bytes change in Glance (same id, new hash).
        new = runner.images.add(str(changed), 'raw', image_id=meta['id'])
        outcome = runner.create(boot_cache_backend, 'new', new,
                                raw_path=str(changed))
    finally:
        runner.images.delete(meta['id'])
    assert outcome.ok and outcome.downloads == 1, outcome
    boot_cache_backend.join_finishers()
    with pool_catalog(clean_cinder) as found:
        info = found.entry(meta['id'])
    assert info.metadata['os_hash_value'] == new['os_hash_value']


def _start_worker(session, tmp_path, name, image_path, image_id, volumes,
                  slow_after=None, disk_format='raw', pause_at=None):
    command = [sys.executable, '-m', 'bootcache_testkit.harness.worker',
               '--sandbox', session.sandbox.directory,
               '--workdir', str(tmp_path / name), '--image', image_path,
               '--image-id', image_id, '--volumes', str(volumes),
               '--lease', str(LEASE), '--disk-format', disk_format]
    if slow_after is not None:
        command += ['--slow-after', str(slow_after)]
    if pause_at is not None:
        command += ['--pause-at', pause_at]
    worker = subprocess.Popen(command, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    line = worker.stdout.readline()
    ready = json.loads(line)
    assert ready['ready'], line
    worker.volume_names = ready['volumes']
    return worker


def _go_then_kill(worker, started, what, timeout=60, interval=0.2):
    """Tell ``worker`` to go and kill it with SIGKILL as soon as
    ``started()`` returns something true, which is returned; fails if
    ``what`` has not started within ``timeout`` seconds."""
    try:
        worker.stdin.write('go\n')
        worker.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            found = started()
            if found:
                break
            assert time.monotonic() < deadline, (
                '%s never started (worker exit status %s)'
                % (what, worker.poll()))
            time.sleep(interval)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        _stop(worker)
    return found


def _stop(worker):
    if worker.poll() is None:
        worker.kill()
    worker.wait(timeout=30)


def test_two_processes_five_creates_each_download_once(
        clean_cinder, entries, tmp_path):
    """Two cinder-volume processes, five concurrent creates each, one
    uncached image: the population lock in Ceph lets one download."""
    import uuid
    runner = clean_cinder.runner
    path, _raw = runner.disk('raw')
    image_id = str(uuid.uuid4())
    # The last 8 MiB arrive at 4 MiB/s: both processes are asking while
    # the first population runs.
    slow_after = runner.virtual_size - (8 << 20)
    workers = [_start_worker(clean_cinder, tmp_path, 'worker%d' % i, path,
                             image_id, 5, slow_after) for i in range(2)]
    try:
        for worker in workers:
            worker.stdin.write('go\n')
            worker.stdin.flush()
        reports = [json.loads(w.stdout.readline()) for w in workers]
        assert [w.wait(timeout=120) for w in workers] == [0, 0]
    finally:
        for worker in workers:
            _stop(worker)
    golden = 'volumes/%s@%s' % (catalog.entry_name(image_id), catalog.SNAPSHOT)
    assert sum(r['downloads'] for r in reports) == 1, reports
    made = sorted(((v['cloned'], v['matches'], v['parent'])
                   for r in reports for v in r['volumes']),
                  key=lambda made: made[2] or '')
    # One volume was filled by the population itself, nine are clones.
    assert made == [(True, True, None)] + [(True, True, golden)] * 9, made
    with pool_catalog(clean_cinder) as found:
        info = found.entry(image_id)
        counts = found.counters.get(['hits', 'misses'])
    assert (info.hits, counts['hits'], counts['misses']) == (9, 9, 1)


@pytest.mark.parametrize('index_complete', [True, False],
                         ids=['complete-index', 'index-rebuilt-by-listing'])
def test_listing_keeps_the_record_of_a_builder_that_has_not_created_its_image(
        clean_cinder, entries, index_complete):
    """A builder records its half-built name, then creates the image: a
    listing in between (an operator's ``list``, a stats refresh) keeps the
    record, so that the image is still reaped if that builder then dies;
    also when that listing rebuilds an incomplete index from the pool.
    Only a record nobody's population lock covers is dropped, by
    maintenance."""
    from cinder_rbd_bootcache.bootcache import index as entry_index
    from cinder_rbd_bootcache.bootcache import lock as lock_mod
    import rados
    import rbd
    import uuid
    image_id = str(uuid.uuid4())
    name = catalog.building_name(image_id, 'live-builder')
    with pool_catalog(clean_cinder) as found:
        if index_complete:
            found.indexed()
        else:
            with contextlib.suppress(rados.ObjectNotFound):
                found.ioctx.remove_object(entry_index.OBJECT)
        try:
            with lock_mod.holding(found.ioctx, catalog.lock_object(image_id),
                                  LEASE, 'test builder'):
                found.add_half_built(name)
                assert found.entries() == []
                assert found.reap_abandoned(LEASE) == []
                assert found.index.contents().building == [name]
                rbd.RBD().create(found.ioctx, name, 4 << 20)
                assert [(e.name, e.state) for e in found.entries()] == [
                    (name, catalog.BUILDING_STATE)]
            # The builder is gone (its lock free): maintenance reaps its
            # image and its record.
            assert found.reap_abandoned(LEASE) == [name]
            assert name not in rbd.RBD().list(found.ioctx)
            # A record whose builder died before creating the image.
            found.add_half_built(name)
            assert found.reap_abandoned(LEASE) == []
            assert found.index.contents().building == []
        finally:
            found.remove_half_built(name)


def test_killed_populator_leaves_nothing_that_is_ever_cloned(
        clean_cinder, boot_cache_backend, entries, tmp_path):
    """kill -9 of the process populating an entry: its half-built image
    is never cloned; the next create waits out the lease, populates,
    and removes what the dead process left."""
    import uuid
    runner = clean_cinder.runner
    path, raw = runner.disk('raw')
    image_id = str(uuid.uuid4())
    worker = _start_worker(clean_cinder, tmp_path, 'victim', path, image_id,
                           1, slow_after=0)

    def building():
        with pool_catalog(clean_cinder) as found:
            return catalog.BUILDING_STATE in [e.state
                                              for e in found.entries()]
    _go_then_kill(worker, building, 'population')
    try:
        with pool_catalog(clean_cinder) as found:
            assert [e.state for e in found.entries()] == \
                [catalog.BUILDING_STATE]
        meta = runner.images.add(path, 'raw', image_id=image_id)
        try:
            outcome = runner.create(boot_cache_backend, 'after kill', meta)
        finally:
            runner.images.delete(image_id)
        # This create populated the entry, so its volume was filled with it.
        assert outcome.ok and outcome.downloads == 1, outcome
        assert outcome.parent is None, outcome
        boot_cache_backend.join_finishers()
        # The dead process's half-built image goes once the OSD has timed
        # out its watch (10 s in the sandbox) and the stats refresh.
        _wait_until_reaped(boot_cache_backend, 'half-built image')
        with pool_catalog(clean_cinder) as found:
            assert [(e.name, e.state) for e in found.entries()] == \
                [(catalog.entry_name(image_id), catalog.READY)]
            # The dead process had created its volume's RBD image to fill
            # it with the entry; in Cinder that volume stays "creating"
            # until an operator deletes it, as after any cinder-volume
            # killed mid-create.
            import rbd
            (victim_volume,) = worker.volume_names
            assert victim_volume in rbd.RBD().list(found.ioctx)
    finally:
        # Also after a failure above: a volume left here fails the
        # leftover check of every later test.
        with pool_catalog(clean_cinder) as found:
            for name in worker.volume_names:
                _remove_once_unwatched(found.ioctx, name)


@pytest.mark.parametrize('step', ['fill', 'finish', 'publish'])
def test_populator_killed_at_a_step_leaves_a_cache_that_works(
        clean_cinder, boot_cache_backend, entries, tmp_path, step):
    """kill -9 of the process populating an entry at a step of its
    population (``worker.PAUSE_POINTS``: holding the lock before the
    fill; after its volume was handed out, before the finish; in the
    finish, the entry renamed but not yet recorded ready): nothing it
    left is cloned unfinished, the next create of the image succeeds, the
    one after it is a clone of a ready entry, and nothing half-built is
    left after the stats refresh.  (Killed during the fill: the test
    above.)"""
    import uuid
    runner = clean_cinder.runner
    path, _raw = runner.disk('raw')
    image_id = str(uuid.uuid4())
    golden = 'volumes/%s@%s' % (catalog.entry_name(image_id),
                                catalog.SNAPSHOT)
    worker = _start_worker(clean_cinder, tmp_path, 'victim', path, image_id,
                           1, pause_at=step)
    try:
        worker.stdin.write('go\n')
        worker.stdin.flush()
        assert json.loads(worker.stdout.readline()) == {'paused': step}
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        # A ready entry now is a finished one: the kill in the finish
        # came after the snapshot was protected.
        assert entries() in ([], [catalog.entry_name(image_id)])
        meta = runner.images.add(path, 'raw', image_id=image_id)
        try:
            first = runner.create(boot_cache_backend, 'after kill', meta)
            boot_cache_backend.join_finishers()
            second = runner.create(boot_cache_backend, 'then', meta)
        finally:
            runner.images.delete(image_id)
        assert first.ok, first
        assert (second.ok, second.downloads, second.parent) == (
            True, 0, golden), second
        boot_cache_backend.join_finishers()
        _wait_until_reaped(boot_cache_backend, 'half-built image')
        with pool_catalog(clean_cinder) as found:
            assert [(e.name, e.state) for e in found.entries()] == \
                [(catalog.entry_name(image_id), catalog.READY)]
    finally:
        _stop(worker)
        import rbd
        with pool_catalog(clean_cinder) as found:
            for name in worker.volume_names:
                if name in rbd.RBD().list(found.ioctx):
                    _remove_once_unwatched(found.ioctx, name)


def test_killed_while_staging_leaves_nothing_after_the_next_population(
        clean_cinder, boot_cache_backend, entries, tmp_path):
    """kill -9 of the process whose population stages a qcow2 download in
    RBD: the staging image is recorded as half-built, so the next
    population (or maintenance) removes it, and that create succeeds."""
    import uuid
    runner = clean_cinder.runner
    path, _raw = runner.disk('qcow2')
    image_id = str(uuid.uuid4())
    worker = _start_worker(clean_cinder, tmp_path, 'staging-victim', path,
                           image_id, 1, slow_after=0, disk_format='qcow2')

    def staging():
        with pool_catalog(clean_cinder) as found:
            return next((e.name for e in found.entries()
                         if e.name.endswith('.staging')), None)
    staging_name = _go_then_kill(worker, staging, 'staging')
    try:
        meta = runner.images.add(path, 'qcow2', image_id=image_id)
        try:
            outcome = runner.create(boot_cache_backend, 'after kill', meta)
        finally:
            runner.images.delete(image_id)
        assert outcome.ok and outcome.downloads == 1, outcome
        boot_cache_backend.join_finishers()
        # What the dead process had open goes once the OSD has timed out
        # its watch and the stats refresh.
        _wait_until_reaped(boot_cache_backend, 'staging image')
        with pool_catalog(clean_cinder) as found:
            assert [(e.name, e.state) for e in found.entries()] == \
                [(catalog.entry_name(image_id), catalog.READY)]
            import rbd
            assert staging_name not in rbd.RBD().list(found.ioctx)
    finally:
        with pool_catalog(clean_cinder) as found:
            for name in worker.volume_names:
                _remove_once_unwatched(found.ioctx, name)


def _qemu_img_converting(image_id):
    """Pids of the ``qemu-img convert`` processes whose command line names
    ``image_id`` (its staging image or its snapshot is their source)."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if argv[:2] == [b'qemu-img', b'convert'] and any(
                image_id.encode() in arg for arg in argv):
            found.append(int(pid))
    return found


def test_killed_mid_conversion_leaves_nothing_after_the_next_population(
        clean_cinder, boot_cache_backend, entries, tmp_path):
    """kill -9 of the process whose population has qemu-img converting a
    qcow2 (1 GiB virtual, 256 MiB of data, staged in RBD): its qemu-img,
    orphaned, writes on into images nobody will publish and ends; the next
    create populates the entry again, and the maintenance removes what the
    dead process left (the staging image, the half-built entry)."""
    import uuid
    runner = clean_cinder.runner
    raw = disk_images.make_raw(str(tmp_path / 'big.raw'), units.Gi,
                               256 * units.Mi, seed=17)
    path = disk_images.convert(raw, str(tmp_path / 'big.qcow2'), 'qcow2')
    image_id = str(uuid.uuid4())
    worker = _start_worker(clean_cinder, tmp_path, 'convert-victim', path,
                           image_id, 1, disk_format='qcow2')
    _go_then_kill(worker, lambda: _qemu_img_converting(image_id),
                  'qemu-img', timeout=120, interval=0.05)
    # The orphans run to their end (cinder-volume's service manager may
    # kill them with it; either way nothing of theirs is published).
    deadline = time.monotonic() + 300
    while _qemu_img_converting(image_id):
        assert time.monotonic() < deadline, 'orphaned qemu-img never ended'
        time.sleep(0.5)
    with pool_catalog(clean_cinder) as found:
        left = [e.name for e in found.entries()]
    # What the kill left: the half-built entry and the staging image.
    assert catalog.BUILDING_INFIX in ' '.join(left), left
    assert any(name.endswith('.staging') for name in left), left
    try:
        meta = runner.images.add(path, 'qcow2', image_id=image_id)
        try:
            outcome = runner.create(boot_cache_backend, 'after kill', meta,
                                    raw_path=raw)
        finally:
            runner.images.delete(image_id)
        assert outcome.ok and outcome.downloads == 1, outcome
        boot_cache_backend.join_finishers()
        _wait_until_reaped(boot_cache_backend, 'what the killed population '
                           'left')
        with pool_catalog(clean_cinder) as found:
            assert [(e.name, e.state) for e in found.entries()] == \
                [(catalog.entry_name(image_id), catalog.READY)]
    finally:
        with pool_catalog(clean_cinder) as found:
            for name in worker.volume_names:
                _remove_once_unwatched(found.ioctx, name)


def _wait_until_reaped(backend, what, timeout=60):
    """Until the backend's stats count nothing half-built: what a killed
    process left goes once the OSD has timed out its watch and a stats
    refresh reaps it."""
    deadline = time.monotonic() + timeout
    while stats(backend)['building']:
        assert time.monotonic() < deadline, '%s never reaped' % what
        time.sleep(2)


def _remove_once_unwatched(ioctx, name, timeout=60):
    """Remove an RBD image a killed process had open.  librbd refuses
    (ImageBusy) while the dead client's watch on it lasts, until the OSD
    times the watch out; each image's watch times out on its own, so the
    half-built entry's going first says nothing about this one."""
    import rbd
    deadline = time.monotonic() + timeout
    while True:
        try:
            rbd.RBD().remove(ioctx, name)
            return
        except rbd.ImageNotFound:
            return
        except rbd.ImageBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


OTHER_PROJECT = 'e0000000000000000000000000000003'


@pytest.mark.parametrize('image_owner,volume_metadata,status,cloned', [
    (cinder_process.PROJECT_ID, {}, 'available', True),
    # Glance's cinder store in a service project: the image-volume says
    # whose image it holds.
    (OTHER_PROJECT, {'image_owner': OTHER_PROJECT}, 'available', True),
    # Someone else's image naming an image-volume: never cloned.
    (OTHER_PROJECT, {}, 'available', False),
    (OTHER_PROJECT, {'image_owner': cinder_process.PROJECT_ID}, 'available',
     False),
    # Still being written (or failed): never cloned.
    (cinder_process.PROJECT_ID, {}, 'error', False),
], ids=['own-image', 'image-owner-metadata', 'other-project',
        'metadata-names-someone-else', 'image-volume-in-error'])
def test_cinder_location_comes_before_the_boot_cache(
        clean_cinder, boot_cache_backend, entries, image_owner,
        volume_metadata, status, cloned):
    """A cinder:// image-volume on this backend that the user may use is
    cloned, and the boot cache is not touched; otherwise the boot cache
    makes the volume."""
    runner = clean_cinder.runner
    backend = boot_cache_backend
    meta = runner.image('raw', 'cinder', shared=False)
    image_volume = runner.image_volume(backend, meta)
    try:
        image_volume.metadata = volume_metadata
        image_volume.status = status
        image_volume.save()
        runner.images.set_meta(meta['id'], owner=image_owner)
        outcome = runner.create(backend, 'cinder-location',
                                runner.images.show(None, meta['id']))
    finally:
        image_volume.status = 'available'
        image_volume.save()
        backend.delete(image_volume)
        runner.images.delete(meta['id'])
    assert outcome.ok, outcome
    if cloned:
        assert outcome.downloads == 0
        assert outcome.parent == 'volumes/%s@volume-%s.clone_snap' % (
            image_volume.name, outcome.volume_id)
        assert entries() == []
    else:
        # The boot cache populated an entry and filled the volume with it.
        assert outcome.downloads == 1
        assert outcome.parent is None, outcome
        boot_cache_backend.join_finishers()
        assert entries() == [catalog.entry_name(meta['id'])]


@pytest.mark.parametrize('disk_format', ['raw', 'qcow2'])
def test_failed_population_leaves_neither_entry_nor_volume(
        clean_cinder, boot_cache_backend, entries, disk_format):
    """A population that fails its check (here Glance's hash) removes the
    half-built entry and the volume it was filling in the same pass."""
    import rbd
    runner = clean_cinder.runner
    meta = runner.image(disk_format, 'file', shared=False)
    runner.images.set_meta(meta['id'], os_hash_value='0' * 128)
    try:
        result = boot_cache_backend.create_from_image(meta['id'], 1)
    finally:
        runner.images.delete(meta['id'])
    try:
        assert result.volume.status == 'error'
        # The pipeline's own hash of the download (image_download asks the
        # client for the data without its check) found it.
        assert type(result.error).__name__ == 'ImageHashMismatch', \
            result.error
        with pool_catalog(clean_cinder) as found:
            assert rbd.RBD().list(found.ioctx) == []
            assert found.entries() == []
    finally:
        boot_cache_backend.delete(result.volume)


def test_half_built_create_failing_after_ceph_applied_it_leaves_nothing(
        clean_cinder, boot_cache_backend, entries, monkeypatch):
    """The create of the half-built entry fails on the client's side after
    the OSD applied it (an op timeout under load): the population removes
    it before it lets the lock go, and the next create populates.  The
    failure is faked, the create it follows is Ceph's: a real cluster
    gives no way to time out an op it applies."""
    import rbd

    from cinder_rbd_bootcache.ceph import api as ceph_api
    from cinder_rbd_bootcache.image_import import staging

    real_api = ceph_api.rbd_api
    failed = []

    class AppliedThenTimedOut:
        def __init__(self, api):
            self._api = api

        def __getattr__(self, name):
            return getattr(self._api, name)

        def create(self, ioctx, name, *args, **kwargs):
            self._api.create(ioctx, name, *args, **kwargs)
            if catalog.BUILDING_INFIX in name and not failed and \
                    not name.endswith(staging.SUFFIX):
                failed.append(name)
                raise rbd.Timeout('faked after the create: timed out')

    monkeypatch.setattr(ceph_api, 'rbd_api',
                        lambda: AppliedThenTimedOut(real_api()))
    runner = clean_cinder.runner
    meta = runner.image('raw', 'file', shared=False)
    try:
        result = boot_cache_backend.create_from_image(meta['id'], 1)
        assert result.volume.status == 'error'
        assert len(failed) == 1, failed
        with pool_catalog(clean_cinder) as found:
            assert rbd.RBD().list(found.ioctx) == []
            assert found.entries() == []
            assert found.indexed().building == []
        boot_cache_backend.delete(result.volume)
        again = runner.create(boot_cache_backend, 'miss', meta)
        boot_cache_backend.join_finishers()
        assert (again.ok, again.downloads) == (True, 1), again
        assert entries() == [catalog.entry_name(meta['id'])]
    finally:
        runner.images.delete(meta['id'])
