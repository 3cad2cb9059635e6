"""The four create-from-image paths, BootCacheRBDDriver, real flow, real Ceph.

Each test reads the volume back from Ceph and compares it byte for byte
with the image, checks its size, and checks which path ran by the number of
downloads and the RBD clone parent.
"""

import re
import urllib.parse

from oslo_utils import units
import pytest


def _only(outcomes):
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def _assert_good(outcome):
    assert outcome.status == 'available', outcome
    assert outcome.verified, outcome.detail


def test_glance_rbd_location_is_cloned(clean_cinder):
    outcome = _only(clean_cinder.runner.run('glance-rbd',
                                            clean_cinder.backends['ours']))
    _assert_good(outcome)
    assert outcome.downloads == 0
    assert re.fullmatch(r'images/[0-9a-f-]{36}@snap', outcome.parent)


def test_cinder_location_clones_the_image_volume(clean_cinder):
    outcome = _only(clean_cinder.runner.run('cinder-volume',
                                            clean_cinder.backends['ours']))
    _assert_good(outcome)
    assert outcome.downloads == 0
    assert re.fullmatch(r'volumes/volume-[0-9a-f-]{36}@volume-[0-9a-f-]{36}'
                        r'\.clone_snap', outcome.parent)


def test_image_volume_cache_miss_then_hit(clean_cinder):
    miss, hit = clean_cinder.runner.run(
        'image-cache', clean_cinder.backends['ours'],
        clean_cinder.backends['ours_cache'])
    _assert_good(miss)
    _assert_good(hit)
    assert (miss.downloads, hit.downloads) == (1, 0)
    assert miss.parent is None
    # The hit is a clone of the cache's image-volume.
    assert hit.parent.startswith('volumes/volume-')


def test_download_raw(clean_cinder):
    outcome = _only(clean_cinder.runner.run('download-raw',
                                            clean_cinder.backends['ours']))
    _assert_good(outcome)
    assert outcome.downloads == 1
    assert outcome.parent is None


def test_download_qcow2_is_converted(clean_cinder):
    outcome = _only(clean_cinder.runner.run('download-qcow2',
                                            clean_cinder.backends['ours']))
    _assert_good(outcome)
    assert outcome.downloads == 1
    assert outcome.parent is None


def test_location_in_volume_pool_is_not_cloned(clean_cinder):
    """A location naming a volume's snapshot must be copied, never cloned."""
    runner = clean_cinder.runner
    backend = clean_cinder.backends['ours']
    meta = runner.images.add(runner.disk('raw')[0], 'raw', store='file')
    source = runner.image_volume(backend, meta)  # also adds cinder:// loc
    try:
        with clean_cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            import rbd
            with rbd.Image(ioctx, source.name) as image:
                image.create_snap('snap')
                image.protect_snap('snap')
            fsid = cluster.get_fsid()
        runner.images.replace_locations(
            meta['id'], ['rbd://%s/volumes/%s/snap' % (fsid, source.name)])
        outcome = runner.create(backend, 'hostile-location', meta)
        _assert_good(outcome)
        assert outcome.parent is None, 'cloned from a volume pool'
        assert outcome.downloads == 1
    finally:
        with clean_cinder.sandbox.client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            import rbd
            with rbd.Image(ioctx, source.name) as image:
                image.unprotect_snap('snap')
                image.remove_snap('snap')
        backend.delete(source)
        runner.images.delete(meta['id'])


def test_volume_larger_than_image_reads_zeros_past_it(clean_cinder):
    runner = clean_cinder.runner
    assert runner.volume_gb * units.Gi > runner.virtual_size
    outcome = _only(runner.run('glance-rbd', clean_cinder.backends['ours']))
    # volume_matches checked the tail past the image is all zeros.
    _assert_good(outcome)


def test_cinder_runs_in_the_requested_concurrency_mode(cinder):
    from bootcache_testkit.harness import runtime
    from cinder_rbd_bootcache.upstream import compat
    assert cinder.process.concurrency == runtime.mode_from_env()
    assert compat.eventlet_patched() == (cinder.process.concurrency ==
                                         'eventlet')


OTHER_FSID = '00000000-0000-0000-0000-000000000000'


@pytest.mark.parametrize('variant, downloads', [
    ('as-stored', 0),
    ('percent-encoded', 0),
    ('other-fsid', 1),
    ('missing-snapshot', 1),
    ('malformed', 1),
    # Not cloned, but converted from the snapshot: no download.
    ('non-raw', 0),
])
def test_location_rules_through_the_flow(clean_cinder, variant, downloads):
    """Each rbd:// location rule, as Glance's location API would hand it
    to the flow: a location that may be cloned is (no download); a qcow2's
    is converted from (no download); any other is not used and the image
    is imported instead (one download)."""
    import rbd

    from bootcache_testkit.harness import disk_images
    runner = clean_cinder.runner
    backend = clean_cinder.backends['ours']
    disk_format = 'qcow2' if variant == 'non-raw' else 'raw'
    meta = runner.images.add(runner.disk(disk_format)[0], disk_format,
                             store='rbd')
    odd_name = 'boot image #1+%s' % meta['id'][:8]
    with clean_cinder.sandbox.admin_client() as cluster, \
            cluster.open_ioctx('images') as ioctx:
        fsid = cluster.get_fsid()
        if variant == 'percent-encoded':
            rbd.RBD().create(ioctx, odd_name, meta['size'], old_format=False,
                             features=rbd.RBD_FEATURE_LAYERING)
            with rbd.Image(ioctx, odd_name) as image:
                disk_images.write_to_rbd(image, runner.disk('raw')[0])
                image.create_snap('snap')
                image.protect_snap('snap')
    url, parent = {
        'as-stored': ('rbd://%s/images/%s/snap' % (fsid, meta['id']),
                      'images/%s@snap' % meta['id']),
        'percent-encoded': ('rbd://%s/images/%s/snap' % (
            fsid, urllib.parse.quote(odd_name, safe='')),
            'images/%s@snap' % odd_name),
        'other-fsid': ('rbd://%s/images/%s/snap' % (OTHER_FSID, meta['id']),
                       None),
        'missing-snapshot': ('rbd://%s/images/%s/nosuchsnap' % (
            fsid, meta['id']), None),
        'malformed': ('rbd://%s/images/%s' % (fsid, meta['id']), None),
        'non-raw': ('rbd://%s/images/%s/snap' % (fsid, meta['id']), None),
    }[variant]
    runner.images.replace_locations(meta['id'], [url])
    try:
        outcome = runner.create(backend, variant, meta)
    finally:
        runner.images.delete(meta['id'])
        if variant == 'percent-encoded':
            with clean_cinder.sandbox.admin_client() as cluster, \
                    cluster.open_ioctx('images') as ioctx:
                with rbd.Image(ioctx, odd_name) as image:
                    image.unprotect_snap('snap')
                    image.remove_snap('snap')
                rbd.RBD().remove(ioctx, odd_name)
    _assert_good(outcome)
    assert outcome.parent == parent
    assert outcome.downloads == downloads


@pytest.mark.parametrize('store', ['rbd', 'file'])
@pytest.mark.parametrize('content', ['qcow2', 'vmdk'])
def test_glance_rbd_store_snapshot_is_inspected_before_its_clone(
        clean_cinder, caplog, store, content):
    """An image declared raw whose bytes are another format is refused
    with the same error and user message whatever store holds it: from
    the rbd store before its snapshot is cloned (upstream clones it), from
    the file store by the import.  Nothing of the volume is left (the
    fixture checks the pool), and the log says what the user message
    cannot, with the volume and the image.  (A raw image in the rbd store
    is still cloned, with no download: test_glance_rbd_location_is_cloned
    and test_location_rules_through_the_flow.)"""
    from cinder import context
    from cinder.db import api as db_api
    from cinder.message import message_field

    runner = clean_cinder.runner
    backend = clean_cinder.backends['ours']
    meta = runner.images.add(runner.disk(content)[0], 'raw', store=store)
    try:
        result = backend.create_from_image(meta['id'], runner.volume_gb)
        downloads = runner.images.downloads[meta['id']]
    finally:
        runner.images.delete(meta['id'])
    volume = result.volume
    messages = db_api.message_get_all(context.get_admin_context(),
                                      filters={'resource_uuid': volume.id})
    status = volume.status
    backend.delete(volume)  # a volume in error is the user's to delete
    assert status == 'error'
    assert type(result.error).__name__ == 'ImageFormatMismatch', repr(
        result.error)
    assert str(result.error) == (
        'Image %s is unacceptable: its disk_format is raw but its content '
        'is %s. Upload it again with the right disk_format.'
        % (meta['id'], content))
    # The rbd store's snapshot is refused unread by Glance's download API.
    assert downloads == (0 if store == 'rbd' else 1)
    assert [m['detail_id'] for m in messages] == [
        message_field.Detail.DRIVER_FAILED_CREATE[0]]
    logged = [r.getMessage() for r in caplog.records
              if volume.id in r.getMessage()
              and 'The user is told' in r.getMessage()]
    assert logged == [
        'Volume %s from image %s failed: ImageFormatMismatch: %s  The user '
        'is told: "Driver failed to create the volume."'
        % (volume.id, meta['id'], result.error)], logged
