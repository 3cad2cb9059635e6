"""The import pipeline through Cinder's real flow, on the sandbox.

Good images of every format the pipeline handles arrive byte-exact; raw
ones need no local disk; bad ones fail with a clear error, a user message,
the volume in ``error`` and no RBD image left (the ``clean_cinder``
fixture checks the pool after each test).  pytest.mark.parametrize is the
table here: these tests need pytest fixtures, which ddt cannot pass.
"""

import os
import subprocess
import time

from oslo_utils import units
import pytest

from bootcache_testkit.harness import cinder_process
from bootcache_testkit.harness import disk_images
from bootcache_testkit.harness import session as harness_session
from bootcache_testkit.harness import verify
from bootcache_testkit import sandbox as ceph_sandbox


def _user_messages(volume):
    from cinder import context
    from cinder.db import api as db_api
    return db_api.message_get_all(context.get_admin_context(),
                                  filters={'resource_uuid': volume.id})


def _detail_id(name):
    from cinder.message import message_field
    return getattr(message_field.Detail, name)[0]


def _detail_text(name):
    from cinder.message import message_field
    return getattr(message_field.Detail, name)[1]


@pytest.mark.parametrize('disk_format',
                         ['raw', 'qcow2', 'vmdk', 'vhdx', 'vhd', 'vdi'])
def test_every_format_arrives_byte_exact(clean_cinder, disk_format):
    runner = clean_cinder.runner
    meta = runner.image(disk_format, 'file', shared=False)
    try:
        outcome = runner.create(clean_cinder.backends['ours'],
                                'import-' + disk_format, meta)
    finally:
        runner.images.delete(meta['id'])
    assert outcome.status == 'available', outcome
    assert outcome.verified, outcome.detail
    assert (outcome.downloads, outcome.parent) == (1, None)


def test_sparse_raw_stays_sparse(clean_cinder, tmp_path):
    runner = clean_cinder.runner
    backend = clean_cinder.backends['ours']
    raw = disk_images.make_raw(str(tmp_path / 'sparse.raw'),
                               64 * units.Mi, 8 * units.Mi, seed=7)
    meta = runner.images.add(raw, 'raw')
    try:
        outcome = runner.create(backend, 'sparse-raw', meta, keep=True,
                                raw_path=raw)
        assert outcome.verified, outcome.detail
        volume = backend.volumes()[0]
        with clean_cinder.sandbox.client() as cluster, \
                cluster.open_ioctx(backend.pool) as ioctx:
            allocated = verify.allocated_bytes(ioctx, volume.name)
        assert allocated == 8 * units.Mi, allocated
    finally:
        backend.delete_all()
        runner.images.delete(meta['id'])


@pytest.fixture
def conversion_dir(clean_cinder, tmp_path):
    """Mounts a tmpfs of the size asked for as image_conversion_dir."""
    from oslo_config import cfg
    mounted = []

    def make(size_mib):
        path = tmp_path / ('conversion-%d' % size_mib)
        path.mkdir()
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%dm' % size_mib,
                        'tmpfs', str(path)], check=True)
        mounted.append(path)
        cfg.CONF.set_override('image_conversion_dir', str(path))
        return path

    yield make
    cfg.CONF.set_override('image_conversion_dir',
                          clean_cinder.process.conversion_dir)
    for path in mounted:
        subprocess.run(['umount', str(path)], check=True)


def test_raw_import_uses_no_conversion_space(clean_cinder, conversion_dir):
    """Upstream needs the image on local disk; ours streams it."""
    tiny = conversion_dir(8)
    runner = clean_cinder.runner
    meta = runner.image('raw', 'file', shared=False)
    assert meta['size'] > 8 * units.Mi
    try:
        upstream = runner.create(clean_cinder.backends['upstream'],
                                 'raw-upstream', meta)  # deletes its volume
        ours = runner.create(clean_cinder.backends['ours'], 'raw-ours', meta)
    finally:
        runner.images.delete(meta['id'])
    assert upstream.status == 'error'
    assert 'ImageTooBig' in upstream.error, upstream.error
    assert ours.status == 'available' and ours.verified, ours
    assert os.listdir(tiny) == []


def test_qcow2_needs_only_its_own_size_locally(clean_cinder, conversion_dir):
    """The space check and the staging use the image size, not virtual."""
    runner = clean_cinder.runner
    meta = runner.image('qcow2', 'file', shared=False)
    # Room for the qcow2 file, not for its 64 MiB raw conversion.
    room = conversion_dir(meta['size'] // units.Mi + 4)
    assert meta['virtual_size'] > meta['size'] + 4 * units.Mi
    try:
        outcome = runner.create(clean_cinder.backends['ours'], 'qcow2', meta)
    finally:
        runner.images.delete(meta['id'])
    assert outcome.status == 'available' and outcome.verified, outcome
    assert os.listdir(room) == []


# -- bad input: the table -------------------------------------------------
def _qcow2_with(tmp_path, *options):
    path = str(tmp_path / 'bad.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', *options,
                    path, '64M'], check=True)
    return path


def _hash_mismatch(runner, tmp_path, disk_format):
    meta = runner.images.add(runner.disk(disk_format)[0], disk_format)
    runner.images.set_meta(meta['id'], os_hash_value='0' * 128)
    return meta


def _fault(kind, disk_format):
    def make(runner, tmp_path):
        meta = runner.images.add(runner.disk(disk_format)[0], disk_format)
        runner.images.inject_fault(meta['id'], kind, meta['size'] // 2)
        return meta
    return make


def _backing_file(runner, tmp_path):
    # A classic: the "image" reads a host file through its backing file.
    return runner.images.add(_qcow2_with(tmp_path, '-b', '/etc/hostname',
                                         '-F', 'raw'), 'qcow2')


def _data_file(runner, tmp_path):
    data = tmp_path / 'outside.raw'
    data.write_bytes(b'')
    return runner.images.add(_qcow2_with(
        tmp_path, '-o', 'data_file=%s' % data), 'qcow2')


def _declared(disk_format, content):
    def make(runner, tmp_path):
        return runner.images.add(runner.disk(content)[0], disk_format)
    return make


def _raw_larger_than_volume(runner, tmp_path):
    meta = runner.images.add(runner.disk('raw')[0], 'raw')
    # As if Glance reported an image bigger than the volume, with no
    # virtual_size, so the flow's own check does not catch it first.
    runner.images.set_meta(meta['id'], size=2 * units.Gi, virtual_size=None)
    return meta


def _qcow2_larger_than_volume(runner, tmp_path):
    path = str(tmp_path / 'big.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '2G'],
                   check=True)
    meta = runner.images.add(path, 'qcow2')
    runner.images.set_meta(meta['id'], virtual_size=None)
    return meta


# (case, make image, exception class, words in its message, user message
#  detail: a name in cinder.message.message_field.Detail)
BAD_IMAGES = [
    ('raw-hash-mismatch', lambda r, t: _hash_mismatch(r, t, 'raw'),
     'ImageHashMismatch', 'Glance records', 'DRIVER_FAILED_CREATE'),
    ('qcow2-hash-mismatch', lambda r, t: _hash_mismatch(r, t, 'qcow2'),
     'ImageHashMismatch', 're-upload the image', 'DRIVER_FAILED_CREATE'),
    ('raw-truncated', _fault('truncate', 'raw'),
     'ImageStreamFailed', 'the stream ended after', 'DRIVER_FAILED_CREATE'),
    ('qcow2-truncated', _fault('truncate', 'qcow2'),
     'ImageStreamFailed', 'the stream ended after', 'DRIVER_FAILED_CREATE'),
    ('raw-service-error', _fault('error', 'raw'),
     'ImageStreamFailed', 'failed mid-stream', 'DRIVER_FAILED_CREATE'),
    ('qcow2-service-error', _fault('error', 'qcow2'),
     'ImageStreamFailed', 'failed mid-stream', 'DRIVER_FAILED_CREATE'),
    ('qcow2-backing-file', _backing_file,
     'ImageUnsafe', 'backing_file', 'DRIVER_FAILED_CREATE'),
    ('qcow2-data-file', _data_file,
     'ImageUnsafe', 'data_file', 'DRIVER_FAILED_CREATE'),
    ('qcow2-declared-raw', _declared('raw', 'qcow2'),
     'ImageFormatMismatch', 'disk_format is raw but its content is qcow2',
     'DRIVER_FAILED_CREATE'),
    ('raw-declared-qcow2', _declared('qcow2', 'raw'),
     'ImageFormatMismatch', 'disk_format is qcow2 but its content is raw',
     'DRIVER_FAILED_CREATE'),
    ('vmdk-declared-vhdx', _declared('vhdx', 'vmdk'),
     'ImageFormatMismatch', 'content is vmdk', 'DRIVER_FAILED_CREATE'),
    ('raw-larger-than-volume', _raw_larger_than_volume,
     'ImageLargerThanVolume', 'Create a larger volume',
     'NOT_ENOUGH_SPACE_FOR_IMAGE'),
    ('qcow2-larger-than-volume', _qcow2_larger_than_volume,
     'ImageLargerThanVolume', 'virtual size is 2147483648 bytes',
     'NOT_ENOUGH_SPACE_FOR_IMAGE'),
]


@pytest.mark.parametrize('case,make,error,words,detail', BAD_IMAGES,
                         ids=[c[0] for c in BAD_IMAGES])
def test_bad_image_fails_cleanly(clean_cinder, tmp_path, caplog, case, make,
                                 error, words, detail):
    runner = clean_cinder.runner
    backend = clean_cinder.backends['ours']
    meta = make(runner, tmp_path)
    try:
        result = backend.create_from_image(meta['id'], runner.volume_gb)
    finally:
        runner.images.delete(meta['id'])
    messages = _user_messages(result.volume)
    status = result.volume.status
    backend.delete(result.volume)  # a volume in error is the user's to delete
    assert status == 'error'
    assert type(result.error).__name__ == error, repr(result.error)
    assert words in str(result.error), str(result.error)
    assert meta['id'] in str(result.error)
    assert [m['detail_id'] for m in messages] == [_detail_id(detail)]
    # The precise reason, which no user message holds, is in the log.
    told = [r.getMessage() for r in caplog.records
            if 'The user is told' in r.getMessage()]
    assert told == ['Volume %s from image %s failed: %s: %s  The user is '
                    'told: "%s"' % (result.volume.id, meta['id'], error,
                                    result.error, _detail_text(detail))]
    # clean_cinder then fails the test if any RBD image is left.
    # (Cinder makes the directory at its first download: none may be yet.)
    conversion_dir = clean_cinder.process.conversion_dir
    assert not os.path.exists(conversion_dir) or \
        os.listdir(conversion_dir) == []


def test_corrupt_qcow2_is_refused_before_anything_is_written(
        clean_cinder, boot_cache_backend, entries, tmp_path, caplog):
    """A qcow2 whose data cluster lies beyond the end of its file converts
    without error (its data read as zeros); qemu-img check finds it
    corrupt, and the boot cache refuses it before its entry or the volume
    get a byte: the user is told, nothing is left in the pool."""
    import rbd
    from tests.functional import conftest
    runner = clean_cinder.runner
    path = str(tmp_path / 'corrupt.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '64M'],
                   check=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 1M',
                    path], check=True, stdout=subprocess.DEVNULL)
    disk_images.damage_qcow2(path, 'beyond-eof')
    meta = runner.images.add(path, 'qcow2')
    try:
        result = boot_cache_backend.create_from_image(meta['id'], 1)
    finally:
        runner.images.delete(meta['id'])
    messages = _user_messages(result.volume)
    status = result.volume.status
    boot_cache_backend.delete(result.volume)
    assert status == 'error'
    assert type(result.error).__name__ == 'ImageCorrupt', repr(result.error)
    assert str(result.error).startswith(
        'Image %s is corrupt: qemu-img check found 2 corruptions in its '
        'metadata.' % meta['id']), str(result.error)
    assert 'must upload it again' in str(result.error)
    assert [m['detail_id'] for m in messages] == [
        _detail_id('DRIVER_FAILED_CREATE')]
    assert any('The user is told' in r.getMessage() and
               'ImageCorrupt' in r.getMessage() for r in caplog.records)
    boot_cache_backend.join_finishers()
    assert entries() == []
    with conftest.pool_catalog(clean_cinder) as found:
        assert rbd.RBD().list(found.ioctx) == []
    conversion_dir = clean_cinder.process.conversion_dir
    assert not os.path.exists(conversion_dir) or \
        os.listdir(conversion_dir) == []


# -- a full pool ----------------------------------------------------------
def test_full_pool_fails_fast_and_leaves_nothing(clean_cinder, tmp_path):
    """A small cluster fills up during the import: clear error, no image.

    The image arrives slowly (one 4 MiB chunk a second after the first
    16 MiB), so the monitor raises the pool's full flag mid-import whatever
    the timing of this machine.  Upstream waits for ever here.
    """
    runner = clean_cinder.runner
    small = ceph_sandbox.Sandbox(str(tmp_path / 'small'),
                                 memstore_bytes=160 * units.Mi)
    small.up(tie_to_parent=True)
    backend = None
    meta = None
    try:
        backend = cinder_process.BackendUnderTest(
            clean_cinder.process, 'small_cluster', cinder_process.OUR_DRIVER,
            rbd_ceph_conf=small.conf_path, bootcache_import_stall_timeout=15)
        raw = disk_images.make_raw(str(tmp_path / 'big.raw'),
                                   96 * units.Mi, 96 * units.Mi, seed=3)
        meta = runner.images.add(raw, 'raw')
        runner.images.inject_fault(meta['id'], 'slow', 16 * units.Mi)
        _fill(small, 112 * units.Mi)
        started = time.monotonic()
        result = backend.create_from_image(meta['id'], 1)
        seconds = time.monotonic() - started
        assert result.volume.status == 'error'
        assert type(result.error).__name__ == 'CephPoolFull', result.error
        assert 'Ceph pool volumes is full' in str(result.error)
        print("full-pool create failed after %.1f s" % seconds)
        assert seconds < 60, seconds
        assert [m['detail_id'] for m in _user_messages(result.volume)] == [
            _detail_id('DRIVER_FAILED_CREATE')]
        left = harness_session.leftover_rbd_images(small)
        assert left == {'images': ['filler']}, left
    finally:
        if meta:
            runner.images.delete(meta['id'])
        if backend:
            backend.delete_all()
        small.down()


def _fill(sandbox, size):
    """Write ``size`` bytes of data into ``images/filler``."""
    import rbd
    with sandbox.admin_client() as cluster, \
            cluster.open_ioctx('images') as ioctx:
        rbd.RBD().create(ioctx, 'filler', size, old_format=False)
        with rbd.Image(ioctx, 'filler') as image:
            for offset in range(0, size, 4 * units.Mi):
                image.write(os.urandom(4 * units.Mi), offset)


def test_flow_download_path_converts_through_the_pipeline(clean_cinder,
                                                          caplog):
    """With the image-volume cache on, Cinder's flow downloads the image
    itself and calls copy_image_to_volume with its temporary file; a qcow2
    must then be converted straight into RBD, byte-exact."""
    runner = clean_cinder.runner
    backend = clean_cinder.backends['ours_cache']
    meta = runner.image('qcow2', 'file', shared=False)
    try:
        outcome = runner.create(backend, 'cache-miss-qcow2', meta,
                                keep=True)
    finally:
        backend.delete_all()
        runner.images.delete(meta['id'])
    assert outcome.status == 'available' and outcome.verified, outcome
    assert (outcome.downloads, outcome.parent) == (1, None)
    imported = [r.getMessage() for r in caplog.records
                if r.name == 'cinder_rbd_bootcache.image_import.pipeline'
                and 'Imported image %s' % meta['id'] in r.getMessage()]
    assert len(imported) == 1 and 'by convert' in imported[0], imported


# -- non-raw images with no local disk ------------------------------------
@pytest.fixture(scope='module')
def big_disks(tmp_path_factory):
    """(image file, its raw content) per format: a qcow2 of 1 GiB virtual
    with 256 MiB of data, and a smaller vmdk."""
    directory = tmp_path_factory.mktemp('big-disks')
    made = {}
    for disk_format, virtual, data in (('qcow2', units.Gi, 256 * units.Mi),
                                       ('vmdk', 256 * units.Mi,
                                        64 * units.Mi)):
        raw = disk_images.make_raw(str(directory / (disk_format + '.raw')),
                                   virtual, data, seed=11)
        made[disk_format] = (disk_images.convert(
            raw, str(directory / ('image.' + disk_format)), disk_format),
            raw)
    return made


def _imported_by(caplog, image_id):
    return [r.getMessage() for r in caplog.records
            if r.name == 'cinder_rbd_bootcache.image_import.pipeline'
            and 'Imported image %s' % image_id in r.getMessage()]


@pytest.mark.parametrize('disk_format', ['qcow2', 'vmdk'])
@pytest.mark.parametrize('store,downloads,method', [
    ('file', 1, 'convert'), ('rbd', 0, 'store')])
def test_non_raw_image_needs_no_local_disk(clean_cinder, conversion_dir,
                                           big_disks, caplog, disk_format,
                                           store, downloads, method):
    """Over HTTP the download is staged in RBD; from Glance's rbd store
    qemu-img reads the snapshot: image_conversion_dir, a 64 MiB tmpfs,
    is never used, and nothing is left in it or in the pool."""
    room = conversion_dir(64)
    runner = clean_cinder.runner
    path, raw = big_disks[disk_format]
    meta = runner.images.add(path, disk_format, store=store)
    assert meta['size'] > 64 * units.Mi
    try:
        outcome = runner.create(clean_cinder.backends['ours'],
                                '%s-%s' % (disk_format, store), meta,
                                raw_path=raw)
    finally:
        runner.images.delete(meta['id'])
    assert outcome.status == 'available' and outcome.verified, outcome
    assert (outcome.downloads, outcome.parent) == (downloads, None)
    imported = _imported_by(caplog, meta['id'])
    assert len(imported) == 1 and 'by %s' % method in imported[0], imported
    assert os.listdir(room) == []
    # clean_cinder then checks that no staging image is left in the pool.


def _declared_vmdk_holding_qcow2(runner, tmp_path):
    return runner.disk('qcow2')[0], 'vmdk'


def _qcow2_backed_by_host_file(runner, tmp_path):
    return _qcow2_with(tmp_path, '-b', '/etc/hostname', '-F', 'raw'), 'qcow2'


def _qcow2_with_a_cluster_beyond_its_end(runner, tmp_path):
    path = str(tmp_path / 'corrupt.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '64M'],
                   check=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 1M',
                    path], check=True, stdout=subprocess.DEVNULL)
    disk_images.damage_qcow2(path, 'beyond-eof')
    return path, 'qcow2'


@pytest.mark.parametrize('store', ['file', 'rbd'])
@pytest.mark.parametrize('make,error,words', [
    (_qcow2_backed_by_host_file, 'ImageUnsafe', 'backing_file'),
    (_declared_vmdk_holding_qcow2, 'ImageFormatMismatch',
     'disk_format is vmdk but its content is qcow2'),
    (_qcow2_with_a_cluster_beyond_its_end, 'ImageCorrupt',
     'is corrupt: qemu-img check found 2 corruptions'),
], ids=['qcow2-backing-file', 'qcow2-declared-vmdk', 'qcow2-corrupt'])
def test_bad_non_raw_image_is_refused_on_both_paths(clean_cinder, tmp_path,
                                                    make, error, words,
                                                    store):
    """The header of a staged download and of a store snapshot get the
    same checks as a local file, and qemu-img check reads the metadata of
    either, before anything is written."""
    runner = clean_cinder.runner
    backend = clean_cinder.backends['ours']
    path, disk_format = make(runner, tmp_path)
    meta = runner.images.add(path, disk_format, store=store)
    before = runner.images.downloads[meta['id']]
    try:
        result = backend.create_from_image(meta['id'], runner.volume_gb)
    finally:
        runner.images.delete(meta['id'])
    status = result.volume.status
    backend.delete(result.volume)
    assert status == 'error'
    assert type(result.error).__name__ == error, repr(result.error)
    assert words in str(result.error) and meta['id'] in str(result.error)
    # The store snapshot was read, not downloaded.
    assert runner.images.downloads[meta['id']] - before == \
        (1 if store == 'file' else 0)
    # clean_cinder then fails the test if a staging image is left.


def test_full_pool_while_staging_leaves_nothing(clean_cinder, tmp_path):
    """A pool that fills up while a qcow2 download is staged in RBD:
    CephPoolFull, and neither the staging image nor the volume stays."""
    runner = clean_cinder.runner
    small = ceph_sandbox.Sandbox(str(tmp_path / 'small'),
                                 memstore_bytes=160 * units.Mi)
    small.up(tie_to_parent=True)
    backend = None
    meta = None
    try:
        backend = cinder_process.BackendUnderTest(
            clean_cinder.process, 'small_staging', cinder_process.OUR_DRIVER,
            rbd_ceph_conf=small.conf_path, bootcache_enabled=False,
            bootcache_import_stall_timeout=15)
        raw = disk_images.make_raw(str(tmp_path / 'big.raw'),
                                   96 * units.Mi, 96 * units.Mi, seed=5)
        qcow2 = disk_images.convert(raw, str(tmp_path / 'big.qcow2'),
                                    'qcow2')
        meta = runner.images.add(qcow2, 'qcow2')
        runner.images.inject_fault(meta['id'], 'slow', 16 * units.Mi)
        _fill(small, 112 * units.Mi)
        result = backend.create_from_image(meta['id'], 1)
        assert result.volume.status == 'error'
        assert type(result.error).__name__ == 'CephPoolFull', result.error
        assert 'Ceph pool volumes is full' in str(result.error)
        left = harness_session.leftover_rbd_images(small)
        assert left == {'images': ['filler']}, left
    finally:
        if meta:
            runner.images.delete(meta['id'])
        if backend:
            backend.delete_all()
        small.down()


def test_unreadable_store_snapshot_falls_back_to_the_download(
        clean_cinder, caplog):
    """A location the rules accept whose snapshot cannot be opened (here
    it does not exist): the image is downloaded instead, with the reason
    in the log."""
    runner = clean_cinder.runner
    meta = runner.image('qcow2', 'rbd', shared=False)
    with clean_cinder.sandbox.client() as cluster:
        fsid = cluster.get_fsid()
    runner.images.replace_locations(
        meta['id'], ['rbd://%s/images/%s/nosuchsnap' % (fsid, meta['id'])])
    try:
        outcome = runner.create(clean_cinder.backends['ours'],
                                'qcow2-unreadable-store', meta)
    finally:
        # The stand-in removes the store's image only while it lists it.
        runner.images.replace_locations(
            meta['id'], ['rbd://%s/images/%s/snap' % (fsid, meta['id'])])
        runner.images.delete(meta['id'])
    assert outcome.status == 'available' and outcome.verified, outcome
    assert outcome.downloads == 1, outcome
    assert any('downloading it instead' in r.getMessage()
               for r in caplog.records), 'no reason logged'
