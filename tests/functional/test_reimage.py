"""Re-image (``cinder reimage``) of a boot-cache clone, through the manager.

Cinder re-images with ``copy_image_to_volume(disable_sparse=True)``, which
our driver leaves to upstream: on 29 qemu-img overwrites the volume in
place (its snapshots stay), on 26-28 the volume is deleted and imported
again (``compat.reimage_keeps_volume``).  The volume is a clone of a
boot-cache entry, so the new bytes must land in the clone and never in the
entry it shares with other volumes of that image.
"""

import os

from bootcache_testkit.harness import disk_images
from bootcache_testkit.harness import scenarios
from bootcache_testkit.harness import verify
from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.upstream import compat


def _matches(ioctx, name, raw):
    ok, detail = verify.volume_matches(ioctx, name, raw, os.path.getsize(raw))
    assert ok, '%s: %s' % (name, detail)


def test_reimage_of_a_boot_cache_clone(clean_cinder, boot_cache_backend,
                                       entries):
    runner = clean_cinder.runner
    backend = boot_cache_backend
    first = runner.image('raw', 'file', shared=False)
    # Other bytes than the runner's own disk (another seed), as qcow2.
    second_qcow2, second_raw = disk_images.cached(
        runner.disks, runner.virtual_size, runner.data_bytes, 'qcow2',
        seed=2)
    second = runner.images.add(second_qcow2, 'qcow2')
    try:
        # The first create populates the entry (its volume is filled with
        # it, no clone); the second is a clone of the finished entry.
        other = runner.create(backend, 'other', first, keep=True)
        boot_cache_backend.join_finishers()
        outcome = runner.create(backend, 'clone', first, keep=True)
        assert outcome.ok and other.ok, (outcome, other)
        by_id = {v.id: v for v in backend.volumes()}
        volume, sibling = by_id[outcome.volume_id], by_id[other.volume_id]
        volume.previous_status = 'available'
        volume.status = 'downloading'
        volume.save()
        backend.manager.reimage(backend.process.context(), volume,
                                runner.images.show(None, second['id']))
        volume.refresh()
        assert volume.status == 'available'
        golden = 'volumes/%s@%s' % (catalog.entry_name(first['id']),
                                    catalog.SNAPSHOT)
        with clean_cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            _matches(ioctx, volume.name, second_raw)
            # The entry (what every later clone reads) and the other volume
            # of the image kept the first image.
            _matches(ioctx, catalog.entry_name(first['id']),
                     runner.disk('raw')[1])
            _matches(ioctx, sibling.name, runner.disk('raw')[1])
            # 29 overwrote the clone; 26-28 replaced it with a full image.
            assert scenarios.parent_of(ioctx, volume.name) == (
                golden if compat.reimage_keeps_volume() else None)
    finally:
        runner.images.delete(first['id'])
        runner.images.delete(second['id'])
