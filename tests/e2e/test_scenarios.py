"""The end-to-end scenarios, as users run them, with their Keystone
credentials: images uploaded with ``openstack image create`` (the cloud
admin), volumes made with ``openstack volume create --image`` (user demo),
stats read with ``cinder get-pools --detail`` (admin), errors with
``cinder message-list``.  Every volume is read back from Ceph and compared
with its image."""

import datetime
import json
import os
import re
import subprocess
import time

import pytest

from bootcache_testkit.e2e import environment
from bootcache_testkit.harness import disk_images
from bootcache_testkit.harness import encryption
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


def create(env, image_id, name, timeout=180, volume_type=None):
    """``openstack volume create --image`` (``--type``); (volume id,
    status, seconds to a final status)."""
    started = time.monotonic()
    typed = ['--type', volume_type] if volume_type else []
    volume_id = env.openstack_json('volume', 'create', '--image', image_id,
                                   '--size', '1', *typed, name)['id']
    deadline = started + timeout
    while time.monotonic() < deadline:
        shown = env.openstack_json('volume', 'show', volume_id)
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
    env.openstack('volume', 'delete', *volume_ids)
    deadline = time.monotonic() + 120
    while any(r['ID'] in volume_ids
              for r in env.openstack_json('volume', 'list')):
        assert time.monotonic() < deadline, 'volumes not deleted'
        time.sleep(0.5)


def ceph_pool(env):
    """The first backend's pool as ``cinder get-pools --detail`` shows
    it to the admin."""
    (pool,) = [p for name, p in environment.pools(env.cinder(
        'get-pools', '--detail', user='admin')).items()
        if name.endswith('@ceph#ceph')]
    return pool


def _created_as_clone_of_glance_image(env, disks, record, image,
                                      volume_name, label):
    """A volume of ``image`` (raw, in Glance's rbd store) is a clone of
    the image's snapshot, its bytes are the image's, and glance-api
    served no download."""
    volume_id, status, seconds = create(env, image['id'], volume_name)
    assert status == 'available'
    parent = check_bytes(env, volume_id, disks['raw'])
    assert parent == 'images/%s@snap' % image['id']
    assert downloads(env, image['id']) == 0
    record(label, create_seconds=round(seconds, 2), parent=parent)
    delete(env, volume_id)


def test_1_image_in_glance_rbd_store_is_cloned(env, disks, record):
    image = env.upload_image(disks['raw'], 'raw', 'ceph', 'raw-in-ceph')
    _created_as_clone_of_glance_image(env, disks, record, image, 's1',
                                      '1 glance rbd store')


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
    # cinder-volume reports the cache at its next stats refresh: wait for
    # a report made after the second create (the pool's timestamp, UTC).
    # Hits and misses are the pool's since its first entry: earlier
    # scenarios' are in them too.
    created = datetime.datetime.now(datetime.timezone.utc).replace(
        tzinfo=None)
    deadline = time.monotonic() + 60
    while True:
        pool = ceph_pool(env)
        if datetime.datetime.fromisoformat(pool['timestamp']) > created:
            break
        assert time.monotonic() < deadline, (created, pool)
        time.sleep(2)
    assert int(pool['bootcache_hits']) >= 1
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
        # Glance answers 415 ("Image failed safety checks"); the
        # openstack client shows the status line only.
        with pytest.raises(Exception, match='415.*Unsupported Media Type'):
            env.upload_image(bad, declared, 'ceph', 'backing-' + declared)
    with open(env.log('glance-api.app'), errors='replace') as f:
        assert f.read().count('Image failed safety checks: ') >= 2

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
    # The image was never signed: the user is not told a signature
    # failed.  The log says what happened, with the volume and image.
    assert text == 'copy image to volume:%s' % DRIVER_FAILED, text
    assert re.search('Volume %s from image %s failed: '
                     'Image(HashMismatch|DataCorrupt): .*'
                     're-upload the image.  The user is told: "%s"'
                     % (volume_id, image['id'], re.escape(DRIVER_FAILED)),
                     _read(env.log('cinder-volume.app'))), \
        'no log line with the reason'
    with env.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        import rbd
        assert 'volume-%s' % volume_id not in rbd.RBD().list(ioctx)
    record('4 tampered qcow2', create_seconds=round(seconds, 2),
           status=status, user_message=text)
    delete(env, volume_id)


#: The user message of an image refused for what it holds: the generic
#: one, the only one of Cinder's fixed list that is true for it.
DRIVER_FAILED = 'Driver failed to create the volume.'


def _read(path):
    with open(path, errors='replace') as f:
        return f.read()


def _user_message(env, volume_id):
    messages = [m for m in env.cinder_json('message-list')
                if m['Resource UUID'] == volume_id]
    assert len(messages) == 1, messages
    return messages[0]['User Message']


@pytest.mark.parametrize('store', ['ceph', 'local'])
def test_4b_qcow2_uploaded_as_raw_is_refused_from_either_store(
        env, disks, record, store):
    """A qcow2 uploaded with disk_format raw: refused with the same error
    from Glance's rbd store (its snapshot is read and inspected before a
    clone; upstream would clone it into a volume no guest boots) and from
    its file store (the import inspects the download).  The user reads
    the generic message, not that the disk format must match the volume
    type's; cinder-volume's log says what to do.  No volume is left in
    Ceph, and the rbd store's image is never downloaded."""
    image = env.upload_image(disks['qcow2'], 'raw', store,
                             'qcow2-as-raw-' + store)
    volume_id, status, seconds = create(env, image['id'], 's4b-' + store)
    assert status == 'error'
    text = _user_message(env, volume_id)
    assert text == 'copy image to volume:%s' % DRIVER_FAILED, text
    assert ('Volume %s from image %s failed: ImageFormatMismatch: Image %s '
            'is unacceptable: its disk_format is raw but its content is '
            'qcow2. Upload it again with the right disk_format.  The user '
            'is told: "%s"' % (volume_id, image['id'], image['id'],
                               DRIVER_FAILED)
            ) in _read(env.log('cinder-volume.app'))
    if store == 'ceph':
        # (From the file store the import stops reading at the first
        # MiB, so glance-api may never log the unfinished response.)
        assert downloads(env, image['id']) == 0
    with env.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        import rbd
        assert 'volume-%s' % volume_id not in rbd.RBD().list(ioctx)
    record('4b qcow2 uploaded as raw, %s store' % store,
           create_seconds=round(seconds, 2), status=status,
           user_message=text)
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
        'disk': 0}}, user='admin')
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
    # warm reads the image from Glance as cinder.conf's [glance] user
    # (Keystone credentials, no user token).
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


def doctor_row(env, *args, config=None):
    """doctor's ``glance locations`` row (and its exit status)."""
    argv = ['doctor', '-f', 'json'] + list(args)
    done = env.operator(*argv, check=False, config_file=config)
    (row,) = [r for r in json.loads(done.stdout)
              if r['Check'] == 'glance locations']
    return row, done.returncode


def test_7_glance_user_without_service_role(env, disks, record):
    """Glance shows image locations only to the service role (its
    location API; show_image_direct_url and show_multiple_locations are
    off).  doctor, as cinder-volume's [glance] user, gets them; with a
    [glance] user that lacks the role, doctor says so, and a create from
    an image in Glance's rbd store still succeeds, through the boot cache
    (one download) instead of a clone, while cinder-volume's log says
    why it could not clone."""
    image = env.upload_image(disks['raw'], 'raw', 'ceph', 'no-service-role')
    row, status = doctor_row(env, '--image', image['id'])
    assert row['Result'] == 'ok', row
    assert '1 location(s) (rbd)' in row['Detail'], row
    env.identity.add_service_user('glance-reader', ('member', 'reader'))
    log = env.log('cinder-volume.app')
    with env.glance_user_of_cinder_volume('glance-reader') as conf:
        row, status = doctor_row(env, '--image', image['id'], config=conf)
        assert (row['Result'], status) == ('error', 1), row
        assert '403 Forbidden' in row['Detail'], row
        assert 'lacks the "service" role' in row['Detail'], row
        assert 'openstack role add --user glance-reader' in row['Detail']
        with open(log, errors='replace') as f:
            f.seek(0, os.SEEK_END)
            start = f.tell()
        volume_id, status, seconds = create(env, image['id'], 's7')
        assert status == 'available'
        with open(log, errors='replace') as f:
            f.seek(start)
            written = f.read()
    assert ('Glance method get_image_locations is available but a '
            'dedicated [glance] section is required') in written
    # Not a clone of Glance's image: filled from the one download, which
    # populated the boot-cache entry.
    parent = check_bytes(env, volume_id, disks['raw'])
    assert parent != 'images/%s@snap' % image['id']
    assert downloads(env, image['id']) == 1
    # The [glance] user is cinder again: the next create clones.
    second, status, _ = create(env, image['id'], 's7-second')
    assert status == 'available'
    assert check_bytes(env, second, disks['raw']) == \
        'images/%s@snap' % image['id']
    record('7 [glance] user without the service role',
           create_seconds=round(seconds, 2), parent=parent)
    delete(env, volume_id, second)


def test_8_private_image_of_the_users_project_is_cloned(env, disks, record):
    """An image private to project demo, in Glance's rbd store: Cinder's
    [glance] user (glance, an admin, as devstack sets it) sees it through
    the location API, so demo's create is a clone of it, no download."""
    image = env.upload_image(disks['raw'], 'raw', 'ceph', 'private',
                             user='demo')
    assert image['visibility'] == 'private'
    _created_as_clone_of_glance_image(env, disks, record, image, 's8',
                                      '8 private image, rbd store')


def test_9_encrypted_volumes_are_written_from_the_boot_cache(
        env, disks, record, tmp_path):
    """A LUKS volume type (front-end, luks, Cinder's fixed-key manager):
    two creates from one image, each a LUKS container that opens with the
    volume's key and holds the image.  The image is downloaded once, by
    the first create, into its boot-cache entry: Cinder's flow would
    download it for every encrypted create (flow_hooks)."""
    env.openstack('volume', 'type', 'create', '--encryption-provider',
                  'luks', '--encryption-cipher', 'aes-xts-plain64',
                  '--encryption-key-size', '256',
                  '--encryption-control-location', 'front-end',
                  '--property', 'volume_backend_name=ceph', 'luks',
                  user='admin')
    image = env.upload_image(disks['raw'], 'raw', 'local', 'raw-for-luks')
    first, status1, seconds1 = create(env, image['id'], 's7-first',
                                      volume_type='luks')
    second, status2, seconds2 = create(env, image['id'], 's7-second',
                                       volume_type='luks')
    assert (status1, status2) == ('available', 'available')
    assert downloads(env, image['id']) == 1
    with env.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        import rbd
        assert 'bootcache.%s' % image['id'] in rbd.RBD().list(ioctx)
    length = os.path.getsize(disks['raw'])
    with encryption.LuksReader(env.sandbox) as reader:
        for volume_id in (first, second):
            name = 'volume-%s' % volume_id
            assert reader.probe(name)['format'] == 'luks'
            assert reader.info(name)['virtual-size'] == 1 << 30
            plain = str(tmp_path / name)
            reader.plaintext(name, length, plain)
            assert verify.file_digest(plain) == verify.file_digest(
                disks['raw'])
    record('9 encrypted (luks)', first_create_seconds=round(seconds1, 2),
           second_create_seconds=round(seconds2, 2), downloads=1)
    delete(env, first, second)


def _wait_for(env, kind, object_id, field, wanted, user='demo',
              timeout=300):
    """``openstack KIND show`` until ``field`` is one of ``wanted`` (or
    an error status); the shown object."""
    deadline = time.monotonic() + timeout
    while True:
        shown = env.openstack_json(kind, 'show', object_id, user=user)
        if shown.get(field) in wanted or shown.get(field) == 'error':
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(1)


def _boot_cache_clone(env, disks, name):
    """(populating volume, clone of the image's boot-cache entry, image)
    of a raw image in Glance's file store."""
    image = env.upload_image(disks['raw'], 'raw', 'local', name)
    first, status1, _seconds = create(env, image['id'], name + '-first')
    second, status2, _seconds = create(env, image['id'], name + '-clone')
    assert (status1, status2) == ('available', 'available')
    assert check_bytes(env, second, disks['raw']) == (
        'volumes/bootcache.%s@golden' % image['id'])
    return first, second, image


def test_10_backups_of_a_boot_cache_clone_restore_its_bytes(
        env, disks, record, tmp_path):
    """cinder-backup's Ceph driver backs a volume cloned from a
    boot-cache entry up in full and then incrementally (RBD diffs of the
    clone), and the incremental backup restores, into a new volume, the
    clone's bytes as they were when it was taken."""
    first, clone, _image = _boot_cache_clone(env, disks, 's10')
    backups = []
    full = env.openstack_json('volume', 'backup', 'create', '--name',
                              's10-full', clone)['id']
    backups.append(full)
    assert _wait_for(env, 'volume backup', full, 'status',
                     ('available',))['status'] == 'available'
    # The guest writes 1 MiB at 8 MiB (here through librbd, as a guest's
    # writes reach the image) between the two backups.
    changed = bytes(range(256)) * 4096
    expected = str(tmp_path / 'expected.raw')
    with open(disks['raw'], 'rb') as src, open(expected, 'wb') as dst:
        dst.write(src.read())
        dst.seek(8 * MiB)
        dst.write(changed)
    import rbd
    with env.sandbox.client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx, \
            rbd.Image(ioctx, 'volume-%s' % clone) as image:
        image.write(changed, 8 * MiB)
    incremental = env.openstack_json(
        'volume', 'backup', 'create', '--incremental', '--name',
        's10-incremental', clone)['id']
    backups.append(incremental)
    shown = _wait_for(env, 'volume backup', incremental, 'status',
                      ('available',))
    assert shown['status'] == 'available', shown
    assert shown['is_incremental'] is True
    restored = env.cinder_properties('backup-restore', '--name',
                                     's10-restored', incremental)
    restored_id = restored['volume_id']
    assert _wait_for(env, 'volume', restored_id, 'status',
                     ('available',))['status'] == 'available'
    check_bytes(env, restored_id, expected)
    record('10 backup and restore of a boot-cache clone', full=full,
           incremental=incremental)
    for backup in reversed(backups):
        env.openstack('volume', 'backup', 'delete', backup)
        deadline = time.monotonic() + 120
        while backup in {b['ID'] for b in env.openstack_json(
                'volume', 'backup', 'list')}:
            assert time.monotonic() < deadline, 'backup not deleted'
            time.sleep(1)
    delete(env, first, clone, restored_id)


def test_11_boot_cache_clone_is_retyped_to_the_other_backend(
        env, disks, record):
    """A volume cloned from a boot-cache entry is retyped by its user to
    the second backend's type (``--retype-policy on-demand``: Cinder
    migrates it, as between any two backends): its bytes are in the
    second backend's pool, its image in the first is gone, and it deletes
    from there."""
    first, clone, _image = _boot_cache_clone(env, disks, 's11')
    started = time.monotonic()
    env.openstack('volume', 'set', '--type', 'ceph2', '--retype-policy',
                  'on-demand', clone)
    deadline = time.monotonic() + 300
    while True:
        shown = env.openstack_json('volume', 'show', clone, user='admin')
        migration = shown.get('os-vol-mig-status-attr:migstat')
        if migration in ('success', 'error') or (
                shown['status'] == 'error'):
            break
        assert time.monotonic() < deadline, shown
        time.sleep(1)
    assert (migration, shown['status'], shown['type']) == (
        'success', 'available', 'ceph2'), shown
    assert shown['os-vol-host-attr:host'].endswith('@ceph2#ceph2'), shown
    name = 'volume-%s' % (shown.get('os-vol-mig-status-attr:name_id') or
                          clone)
    import rbd
    with env.sandbox.client() as cluster:
        with cluster.open_ioctx('volumes2') as ioctx:
            ok, detail = verify.volume_matches(
                ioctx, name, disks['raw'], os.path.getsize(disks['raw']))
            assert ok, detail
        with cluster.open_ioctx('volumes') as ioctx:
            assert 'volume-%s' % clone not in rbd.RBD().list(ioctx)
    record('11 retype (migration) of a boot-cache clone',
           migrate_seconds=round(time.monotonic() - started, 2))
    delete(env, first, clone)
