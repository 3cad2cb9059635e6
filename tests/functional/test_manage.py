"""Manage / unmanage next to the boot cache, through Cinder's manager.

Boot-cache entries live in the volumes pool as plain RBD images, so
``cinder manageable-list`` sees them; managing one would rename the golden
image every clone of that Glance image depends on out of the cache.
"""

import pytest

from cinder_rbd_bootcache.bootcache import catalog


def _manageable(backend):
    context = backend.process.context(is_admin=True)
    found = backend.manager.get_manageable_volumes(
        context, None, 1000, 0, ['reference'], ['asc'])
    return {item['reference']['source-name']: item for item in found}


def test_boot_cache_entry_is_not_manageable(clean_cinder, boot_cache_backend,
                                            entries):
    runner = clean_cinder.runner
    backend = boot_cache_backend
    meta = runner.image('raw', 'file', shared=False)
    try:
        outcome = runner.create(backend, 'populates', meta, keep=True)
        assert outcome.ok, outcome
        # The entry is published in the background.
        boot_cache_backend.join_finishers()
        entry = catalog.entry_name(meta['id'])
        listed = _manageable(backend)
        assert listed[entry]['safe_to_manage'] is False
        assert 'boot-cache' in listed[entry]['reason_not_safe']
        # The volume made from the image is Cinder's own.
        (volume,) = [v for v in backend.volumes() if v.id == outcome.volume_id]
        assert listed[volume.name]['reason_not_safe'] == 'already managed'

        target = backend.new_volume(1)
        target.status = 'managing'
        target.save()
        with pytest.raises(Exception) as caught:
            backend.manager.manage_existing(
                backend.process.context(is_admin=True), target,
                {'source-name': entry})
        assert 'boot-cache entry' in str(caught.value)
        target.refresh()
        assert target.status == 'error_managing'
        assert entries() == [entry]
        target.destroy()
    finally:
        runner.images.delete(meta['id'])
