"""The end-to-end scenarios, as users run them: images uploaded with the
``glance`` client, volumes made with ``cinder create --image``, stats read
with ``cinder get-pools --detail``, errors with ``cinder message-list``.
Every volume is read back from Ceph and compared with its image."""

import json
import os
import re
import subprocess
import time

import pytest

from bootcache_testkit.e2e import environment
from bootcache_testkit.harness import disk_images
from bootcache_testkit.harness import scenarios
from bootcache_testkit.harness import verify

MiB = 1 << 20


@pytest.fixture(scope='module')
def disks(tmp_path_factory):
    d = tmp_path_factory.mktemp('disks')
    raw = disk_images.make_raw(str(d / 'image.raw'), 64 * MiB, 16 * MiB)
    qcow2 = str(d / 'image.qcow2')
    disk_images.convert(raw, qcow2, 'qcow2')
    return {'raw': raw, 'qcow2': qcow2, 'dir': d}


def downloads(env, image_id):
    """GETs of the image's data that glance-api served (its access log)."""
    return env.downloads(image_id)


def create(env, image_id, name, timeout=180):
    """``cinder create --image``; (volume id, status, seconds to a final
    status)."""
    started = time.monotonic()
    out = env.cinder('create', '--image', image_id, '--name', name, '1')
    volume_id = environment.properties(out)['id']
    deadline = started + timeout
    while time.monotonic() < deadline:
        shown = env.cinder_properties('show', volume_id)
        if shown['status'] in ('available', 'error'):
            return volume_id, shown['status'], time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError('volume %s still %s after %d s' % (
        volume_id, shown['status'], timeout))


def check_bytes(env, volume_id, raw_path):
    with env.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        ok, detail = verify.volume_matches(ioctx, 'volume-%s' % volume_id,
                                           raw_path,
                                           os.path.getsize(raw_path))
        parent = scenarios.parent_of(ioctx, 'volume-%s' % volume_id)
    assert ok, detail
    return parent


def delete(env, *volume_ids):
    for volume_id in volume_ids:
        env.cinder('delete', volume_id)
    deadline = time.monotonic() + 120
    while any(r['ID'] in volume_ids for r in env.cinder_json('list')):
        assert time.monotonic() < deadline, 'volumes not deleted'
        time.sleep(0.5)


def test_1_image_in_glance_rbd_store_is_cloned(env, disks, record):
    image = env.upload_image(disks['raw'], 'raw', 'ceph', 'raw-in-ceph')
    volume_id, status, seconds = create(env, image['id'], 's1')
    assert status == 'available'
    parent = check_bytes(env, volume_id, disks['raw'])
    assert parent == 'images/%s@snap' % image['id']
    assert downloads(env, image['id']) == 0
    record('1 glance rbd store', create_seconds=round(seconds, 2),
           parent=parent)
    delete(env, volume_id)


def test_2_file_store_downloads_once_then_clones_the_boot_cache(
        env, disks, record):
    image = env.upload_image(disks['raw'], 'raw', 'local', 'raw-in-files')
    first, status1, seconds1 = create(env, image['id'], 's2-first')
    assert downloads(env, image['id']) == 1
    second, status2, seconds2 = create(env, image['id'], 's2-second')
    assert (status1, status2) == ('available', 'available')
    assert downloads(env, image['id']) == 1
    golden = 'volumes/bootcache.%s@golden' % image['id']
    # The first create populated the entry and was filled with it in the
    # same pass; the second is a clone of the entry.
    assert check_bytes(env, first, disks['raw']) is None
    assert check_bytes(env, second, disks['raw']) == golden
    # cinder-volume reports the cache at its next stats refresh (5 s).
    deadline = time.monotonic() + 60
    while True:
        pool = env.cinder_properties('get-pools', '--detail')
        if int(pool['bootcache_hits']) >= 1:
            break
        assert time.monotonic() < deadline, pool
        time.sleep(2)
    assert int(pool['bootcache_entries']) >= 1
    assert int(pool['bootcache_misses']) >= 1
    record('2 file store, boot cache', first_create_seconds=round(
        seconds1, 2), second_create_seconds=round(seconds2, 2),
        downloads=1, pool={k: v for k, v in pool.items()
                           if k.startswith('bootcache_')})
    delete(env, first, second)


def test_3_qcow2_is_converted_and_verified(env, disks, record):
    image = env.upload_image(disks['qcow2'], 'qcow2', 'local', 'qcow2')
    volume_id, status, seconds = create(env, image['id'], 's3')
    assert status == 'available'
    check_bytes(env, volume_id, disks['raw'])
    record('3 qcow2', create_seconds=round(seconds, 2))
    delete(env, volume_id)


def test_4_malicious_qcow2_never_becomes_a_volume(env, disks, record):
    """Glance 33 itself refuses a qcow2 with a backing file at upload
    (format_inspector safety checks), as qcow2 and as raw.  So the bytes
    are swapped in Glance's file store after an honest upload, as a
    tampered store would: the create must fail on the hash before the
    file is ever given to qemu-img, leave the volume in error and tell the
    user why.  (The backing-file check itself, for bytes whose hash
    matches, is tested through Cinder's flow in tests/functional.)"""
    bad = str(disks['dir'] / 'backing.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b',
                    '/etc/hostname', '-F', 'raw', bad, '64M'], check=True)
    for declared in ('qcow2', 'raw'):
        with pytest.raises(Exception, match='failed safety checks'):
            env.upload_image(bad, declared, 'local', 'backing-' + declared)

    image = env.upload_image(disks['qcow2'], 'qcow2', 'local', 'tampered')
    stored = os.path.join(env.directory, 'glance', 'images', image['id'])
    # Same length as what Glance recorded, so Glance serves all of it.
    with open(bad, 'rb') as src, open(stored, 'wb') as dst:
        dst.write(src.read())
        dst.truncate(os.path.getsize(disks['qcow2']))
    volume_id, status, seconds = create(env, image['id'], 's4')
    assert status == 'error'
    messages = [m for m in env.cinder_json('message-list')
                if m['Resource UUID'] == volume_id]
    assert messages, 'no user message for the failed volume'
    text = messages[0]['User Message']
    assert re.search('signature|verification', text, re.I), text
    with env.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        import rbd
        assert 'volume-%s' % volume_id not in rbd.RBD().list(ioctx)
    record('4 tampered qcow2', create_seconds=round(seconds, 2),
           status=status, user_message=text)
    delete(env, volume_id)


def test_5_boot_from_volume_through_nova(env, disks, record):
    """Nova (api, conductor, scheduler, fake-virt compute, Placement) boots
    a server from a volume it asks Cinder to make from an image in
    Glance's file store: our driver makes it through the boot cache,
    Nova attaches it, the build succeeds.  The build's outcome is read
    from the instance actions: the server's own show asks Neutron."""
    image = env.upload_image(disks['raw'], 'raw', 'local', 'bfv')
    env.compute('POST', '/flavors', {'flavor': {
        'name': 'e2e-bfv', 'id': 'e2e-bfv', 'ram': 64, 'vcpus': 1,
        'disk': 0}})
    started = time.monotonic()
    server = env.compute('POST', '/servers', {'server': {
        'name': 'bfv', 'flavorRef': 'e2e-bfv', 'networks': 'none',
        'block_device_mapping_v2': [{
            'boot_index': 0, 'uuid': image['id'], 'source_type': 'image',
            'destination_type': 'volume', 'volume_size': 1,
            'delete_on_termination': True}]}})['server']
    actions = '/servers/%s/os-instance-actions' % server['id']
    deadline = started + 240
    while True:
        # The action appears once the conductor has the instance in its
        # cell; until then the list is empty.
        events = []
        for action in env.compute('GET', actions)['instanceActions']:
            events += env.compute('GET', '%s/%s' % (
                actions, action['request_id']))['instanceAction']['events']
        failed = [e for e in events if e.get('result') == 'Error']
        assert not failed, nova_failure(env, failed)
        build = [e for e in events
                 if e['event'] == 'compute__do_build_and_run_instance']
        if build and build[0]['finish_time']:
            break
        assert time.monotonic() < deadline, nova_failure(env, events)
        time.sleep(1)
    seconds = time.monotonic() - started
    assert build[0]['result'] == 'Success', build
    (attachment,) = env.compute(
        'GET', '/servers/%s/os-volume_attachments' % server['id'])[
            'volumeAttachments']
    volume = env.cinder_properties('show', attachment['volumeId'])
    assert (volume['status'], volume['bootable']) == ('in-use', 'true')
    assert server['id'] in volume['attached_servers']
    # The image was new: this create populated its boot-cache entry and
    # was filled in the same pass (no clone), with one download.
    parent = check_bytes(env, attachment['volumeId'], disks['raw'])
    assert parent is None
    assert downloads(env, image['id']) == 1
    with env.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        import rbd
        deadline = time.monotonic() + 30
        while 'bootcache.%s' % image['id'] not in rbd.RBD().list(ioctx):
            assert time.monotonic() < deadline, 'entry never published'
            time.sleep(0.1)
    record('5 nova boot from volume', boot_seconds=round(seconds, 2),
           volume=attachment['volumeId'], parent=parent)


def nova_failure(env, events):
    """What to read when a build fails: the events (with their tracebacks,
    shown to admins) and the ERROR lines of Nova's services."""
    with open(os.path.join(env.directory, 'nova', 'nova-app.log')) as f:
        errors = [line.rstrip() for line in f if ' ERROR ' in line]
    return 'build events: %s\nnova ERROR lines:\n%s' % (
        json.dumps(events, indent=1), '\n'.join(errors[-20:]))


def test_6_operator_warms_the_cache_before_a_rollout(env, disks, record):
    """The operator's command, with cinder-volume's cinder.conf and the
    Glance it names: ``doctor`` finds nothing to fix, ``warm`` downloads
    the image once (progress lines on a pipe), and the users' first
    ``cinder create`` is already a clone of the entry, with no download."""
    doctor = json.loads(env.operator('doctor', '-f', 'json').stdout)
    assert not [c for c in doctor if c['Result'] == 'error'], doctor
    image = env.upload_image(disks['raw'], 'raw', 'local', 'warmed')
    warmed = env.operator('warm', image['id'], '-f', 'json')
    (result,) = json.loads(warmed.stdout)
    assert result['Result'] == 'cached', (result, warmed.stderr)
    assert re.search(r'100% 64.0 MiB of 64.0 MiB', warmed.stderr), \
        warmed.stderr
    assert downloads(env, image['id']) == 1
    entry = json.loads(env.operator('show', image['id'], '-f',
                                    'json').stdout)
    assert (entry['State'], entry['Hits']) == ('ready', 0), entry
    volume_id, status, seconds = create(env, image['id'], 's6')
    assert status == 'available'
    parent = check_bytes(env, volume_id, disks['raw'])
    assert parent == 'volumes/bootcache.%s@golden' % image['id']
    assert downloads(env, image['id']) == 1
    entry = json.loads(env.operator('show', image['id'], '-f',
                                    'json').stdout)
    assert (entry['Hits'], entry['Clones']) == (1, 1), entry
    record('6 operator warm', warm_seconds=result['Seconds'],
           create_seconds=round(seconds, 2), parent=parent)
    delete(env, volume_id)
