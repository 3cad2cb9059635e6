"""Encrypted (LUKS) volumes from images, through Cinder's real flow.

Cinder's fixed-key ``ConfKeyManager`` holds the key; the volume type's
encryption spec is Cinder's own (front-end, provider luks).  Every create
runs the manager's create_volume flow: without the download Cinder's own
flow makes first (``flow_hooks``), our ``create_volume`` makes the empty
LUKS container in Ceph and ``copy_image_to_encrypted_volume`` writes the
boot-cache entry into it (populated on a miss, one download).
Each volume is read back by qemu-img with the passphrase.

``qemu-img`` is reached through a wrapper on PATH that records each
command line (to show the passphrase is never on one) and, when a test
asks, kills itself with SIGKILL instead of running the LUKS conversion:
the "conversion dies" case is that real process death, not a fake
exception.
"""

import os
import uuid

from oslo_utils import units
import pytest

from bootcache_testkit.harness import encryption
from bootcache_testkit.harness import verify
from cinder_rbd_bootcache.bootcache import catalog
from tests.functional import conftest

pool_catalog = conftest.pool_catalog

WRAPPER = """#!/bin/sh
printf '%%s\\n' "$*" >> %(log)s
case "$*" in
  *driver=luks,key-secret=*|*driver=luks,file.key-secret=*)
    if [ -e %(die)s ]; then kill -9 $$; fi ;;
esac
exec %(real)s "$@"
"""


@pytest.fixture(scope='module')
def key_manager(cinder):
    encryption.configure_key_manager()


@pytest.fixture
def qemu_img(tmp_path, monkeypatch):
    """The qemu-img wrapper; yields (argv log path, die-switch path)."""
    real = '/usr/bin/qemu-img'
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    log, die = tmp_path / 'qemu-img.argv', tmp_path / 'die'
    script = bindir / 'qemu-img'
    script.write_text(WRAPPER % {'log': log, 'die': die, 'real': real})
    script.chmod(0o755)
    monkeypatch.setenv('PATH', '%s:%s' % (bindir, os.environ['PATH']))
    yield log, die


def _messages(volume):
    from cinder import context
    from cinder.db import api as db_api
    return [m['detail_id'] for m in db_api.message_get_all(
        context.get_admin_context(), filters={'resource_uuid': volume.id})]


def _detail_id(name):
    from cinder.message import message_field
    return getattr(message_field.Detail, name)[0]


def _create(session, backend, meta, type_name, key_id=None, **spec):
    from cinder import context as cinder_context
    type_id = encryption.volume_type(type_name, **spec)
    context = session.process.context()
    key_id = key_id or encryption.new_key(cinder_context.get_admin_context(),
                                          type_id)
    return backend.create_from_image(meta['id'], 1, context,
                                     volume_type_id=type_id,
                                     encryption_key_id=key_id)


def _cinder_log(session):
    with open(os.path.join(session.process.workdir, 'cinder.log')) as f:
        return f.read()


def _volume_images(session):
    return [n for n in session.leftovers().get('volumes', [])
            if n.startswith('volume-')]


def _failing_create(session, backend, type_name, **kwargs):
    """A create expected to fail, from a new image: the result, the
    volume's status and user messages, and the volume images left in
    the pool, all read before the volume and image are deleted."""
    runner = session.runner
    meta = runner.image('raw', 'file', shared=False)
    try:
        result = _create(session, backend, meta, type_name, **kwargs)
    finally:
        runner.images.delete(meta['id'])
    status = result.volume.status
    messages = _messages(result.volume)
    left = _volume_images(session)
    backend.delete(result.volume)
    return result, status, messages, left


@pytest.mark.parametrize('disk_format,store,expected_downloads', [
    ('raw', 'file', 1),
    ('qcow2', 'file', 1),
    # The entry is converted from Glance's rbd-store snapshot.
    ('qcow2', 'rbd', 0),
])
def test_two_encrypted_creates_populate_once_and_open_with_their_key(
        clean_cinder, boot_cache_backend, entries, key_manager, qemu_img,
        tmp_path, disk_format, store, expected_downloads):
    runner = clean_cinder.runner
    meta = runner.image(disk_format, store, shared=False)
    _path, raw = runner.disk(disk_format)
    length = os.path.getsize(raw)
    argv_log, _die = qemu_img
    try:
        first = _create(clean_cinder, boot_cache_backend, meta, 'luks')
        second = _create(clean_cinder, boot_cache_backend, meta, 'luks')
        downloads = runner.images.downloads[meta['id']]
    finally:
        runner.images.delete(meta['id'])
    assert first.ok and second.ok, (first.error, second.error)
    # One entry, populated by the first create's one download (none from
    # the rbd store); neither create downloads into image_conversion_dir
    # first (flow_hooks).
    assert entries() == [catalog.entry_name(meta['id'])]
    assert downloads == expected_downloads
    staged = clean_cinder.process.conversion_dir
    assert not os.path.isdir(staged) or os.listdir(staged) == []
    backend_stats = boot_cache_backend.driver
    backend_stats._update_volume_stats()
    assert (backend_stats._stats['bootcache_misses'],
            backend_stats._stats['bootcache_hits']) == (1, 1)
    with encryption.LuksReader(clean_cinder.sandbox) as reader:
        for result in (first, second):
            name = result.volume.name
            assert reader.probe(name)['format'] == 'luks'
            info = reader.info(name)
            assert info['format'] == 'luks'
            # The guest sees exactly the volume's size.
            assert info['virtual-size'] == 1 * units.Gi
            out = str(tmp_path / ('%s.plain' % name))
            reader.plaintext(name, length, out)
            assert verify.file_digest(out) == verify.file_digest(raw)
            os.unlink(out)
    with encryption.LuksReader(clean_cinder.sandbox,
                               secret='0' * 64) as wrong:
        # (qemu-img info opens a LUKS header without unlocking a slot.)
        with pytest.raises(Exception) as failed:
            wrong.plaintext(first.volume.name, units.Mi,
                            str(tmp_path / 'wrong.plain'))
        assert 'Invalid password' in failed.value.stderr
    secret = encryption.passphrase()
    argv = argv_log.read_text()
    # Our qemu-img filled the containers (cryptsetup made their headers),
    # two writers each (the test images are whole 4 MiB objects, >= 8 MiB).
    assert 'create -q -f luks' not in argv
    assert argv.count('--image-opts driver=raw,offset=') == 4
    assert argv.count(',file.driver=luks,file.key-secret=') == 4
    assert secret not in argv
    assert secret not in _cinder_log(clean_cinder)
    for result in (first, second):
        boot_cache_backend.delete(result.volume)


@pytest.fixture
def flow_downloads(boot_cache_backend, monkeypatch):
    """The flow hook leaves every encrypted volume to Cinder's flow (as
    for a volume it cannot tell about): the flow downloads the image,
    ``create_volume`` makes the LUKS container and the copy fills it."""
    monkeypatch.setattr(boot_cache_backend.driver,
                        'encrypted_volume_from_cache',
                        lambda context, volume, image_meta: False)


def test_the_container_create_volume_made_is_filled_from_the_entry(
        clean_cinder, boot_cache_backend, entries, key_manager, qemu_img,
        flow_downloads, tmp_path):
    runner = clean_cinder.runner
    meta = runner.image('raw', 'file', shared=False)
    _path, raw = runner.disk('raw')
    argv_log, _die = qemu_img
    try:
        result = _create(clean_cinder, boot_cache_backend, meta, 'luks')
        downloads = runner.images.downloads[meta['id']]
    finally:
        runner.images.delete(meta['id'])
    assert result.ok, result.error
    # The entry is populated from the flow's download: one in all.
    assert entries() == [catalog.entry_name(meta['id'])]
    assert downloads == 1
    name = result.volume.name
    with encryption.LuksReader(clean_cinder.sandbox) as reader:
        assert reader.info(name)['virtual-size'] == 1 * units.Gi
        out = str(tmp_path / 'plain')
        reader.plaintext(name, os.path.getsize(raw), out)
        assert verify.file_digest(out) == verify.file_digest(raw)
    argv = argv_log.read_text()
    # cryptsetup made the header, our qemu-img wrote the data.
    assert 'create -q -f luks' not in argv
    assert argv.count(',file.driver=luks,file.key-secret=') == 2
    assert encryption.passphrase() not in argv
    boot_cache_backend.delete(result.volume)


def test_a_dying_fill_removes_the_container_create_volume_made(
        clean_cinder, boot_cache_backend, entries, key_manager, qemu_img,
        flow_downloads):
    _argv_log, die = qemu_img
    die.write_text('')
    result, status, messages, left = _failing_create(
        clean_cinder, boot_cache_backend, 'luks')
    assert status == 'error'
    assert ('LUKS container of %s failed: exit code -9' % result.volume.name
            in str(result.error)), str(result.error)
    assert messages == [_detail_id('DRIVER_FAILED_CREATE')]
    assert left == []


def test_missing_key_fails_and_leaves_nothing(
        clean_cinder, boot_cache_backend, entries, key_manager):
    result, status, messages, left = _failing_create(
        clean_cinder, boot_cache_backend, 'luks', key_id=str(uuid.uuid4()))
    assert status == 'error'
    # Cinder's copy_image_to_volume wraps the driver's error (the container
    # is made with the data, so the key is first asked for there).
    assert type(result.error).__name__ == 'ImageCopyFailure', result.error
    assert 'could not get key' in str(result.error), str(result.error)
    assert messages == [_detail_id('DRIVER_FAILED_CREATE')]
    assert left == []
    assert encryption.passphrase() not in _cinder_log(clean_cinder)


@pytest.mark.parametrize('cipher,error', [
    ('aes-xts', 'Invalid cipher field'),        # no IV generator
    # cryptsetup's own reason depends on the host (its crypto backend, or
    # device-mapper's kernel cipher list); ours names the cipher.
    ('rot13-xts-plain64', 'cipher rot13-xts-plain64, 512-bit master key'),
])
def test_wrong_cipher_spec_fails_and_leaves_nothing(
        clean_cinder, boot_cache_backend, entries, key_manager, cipher,
        error):
    result, status, _msgs, left = _failing_create(
        clean_cinder, boot_cache_backend, 'luks-%s' % cipher, cipher=cipher)
    assert status == 'error'
    assert type(result.error).__name__ == 'ImageCopyFailure', result.error
    assert error in str(result.error), str(result.error)
    assert left == []


def test_dying_conversion_leaves_no_volume_image(
        clean_cinder, boot_cache_backend, entries, key_manager, qemu_img):
    argv_log, die = qemu_img
    die.write_text('')
    result, status, messages, left = _failing_create(
        clean_cinder, boot_cache_backend, 'luks')
    assert status == 'error'
    # Cinder's copy_image_to_volume wraps the driver's ImportWriteFailed.
    assert type(result.error).__name__ == 'ImageCopyFailure', result.error
    assert ('LUKS container of %s failed: exit code -9' % result.volume.name
            in str(result.error)), str(result.error)
    assert messages == [_detail_id('DRIVER_FAILED_CREATE')]
    # The container qemu-img was making is gone with the data.
    assert left == []
    # The private directory of the passphrase file is gone.
    assert not [n for n in os.listdir(clean_cinder.process.conversion_dir)
                if n.startswith('bootcache-luks-')]
    assert encryption.passphrase() not in argv_log.read_text()


def _pool_quota(session, max_bytes):
    import json
    with session.sandbox.admin_client() as cluster:
        ret, _out, err = cluster.mon_command(json.dumps({
            'prefix': 'osd pool set-quota', 'pool': 'volumes',
            'field': 'max_bytes', 'val': str(max_bytes)}), b'')
    assert ret == 0, err


def _wait_for_flags(session, want_full, timeout=120):
    """Until the monitor has (or no longer has) flagged the pool full;
    it does so once the OSD has reported the pool's usage."""
    import time

    from cinder_rbd_bootcache.ceph import pool as ceph_pool
    deadline = time.monotonic() + timeout
    while True:
        with session.sandbox.admin_client() as cluster:
            flags = ceph_pool.full_flags(cluster, 'volumes')
        if bool(flags) == want_full:
            return flags
        assert time.monotonic() < deadline, flags
        time.sleep(1)


def test_full_pool_fails_before_writing_and_leaves_nothing(
        clean_cinder, boot_cache_backend, entries, key_manager):
    """A pool over its quota (flag full_quota): the create fails at once
    with a message naming the pool; upstream's ``rbd import`` would wait
    for space."""
    runner = clean_cinder.runner
    meta = runner.image('raw', 'file', shared=False)
    with clean_cinder.sandbox.admin_client() as cluster, \
            cluster.open_ioctx('volumes') as ioctx:
        ioctx.write_full('quota-filler', b'x' * 65536)
    try:
        _pool_quota(clean_cinder, 4096)
        _wait_for_flags(clean_cinder, True)
        result = _create(clean_cinder, boot_cache_backend, meta, 'luks')
        status = result.volume.status
        left = _volume_images(clean_cinder)
        boot_cache_backend.delete(result.volume)
    finally:
        runner.images.delete(meta['id'])
        _pool_quota(clean_cinder, 0)
        with clean_cinder.sandbox.admin_client() as cluster, \
                cluster.open_ioctx('volumes') as ioctx:
            ioctx.remove_object('quota-filler')
        _wait_for_flags(clean_cinder, False)
    assert status == 'error'
    assert type(result.error).__name__ == 'ImageCopyFailure', result.error
    assert 'Ceph pool volumes is full (' in str(result.error)
    assert 'full_quota' in str(result.error)
    assert left == []
