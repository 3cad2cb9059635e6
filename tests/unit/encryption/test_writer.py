"""LuksWriter: the LUKS container and the qemu-img writes into it.

cryptsetup and qemu-img are replaced by a recording function here
(``execute``), and the Ceph seam (``rbd_api``, ``open_image``,
``full_flags``) by stand-ins: a unit test cannot make librbd fail a write
or a pool fill up on demand.  The functional tests run the real tools on
Ceph.
"""

import contextlib
import dataclasses
import os
import stat
import types

from oslo_concurrency import processutils
import pytest

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.ceph import pool as ceph_pool
from cinder_rbd_bootcache.encryption import luks_header
from cinder_rbd_bootcache.encryption import volumes as encrypted_volumes
from cinder_rbd_bootcache.encryption import writer as luks_writer
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline

MiB = 1 << 20
GiB = 1 << 30
SECRET = 'ab' * 32
KEY = encrypted_volumes.LuksKey('aes-256', 'xts', 'plain64', SECRET)
SETTINGS = import_pipeline.Settings(
    block_size=4 << 20, writes_in_flight=8, stall_timeout=30,
    progress_interval=10, conversion_dir='/tmp', ceph_conf='/etc/ceph.conf',
    rbd_user='cinder', luks_pbkdf2_iterations=600000, luks_writers=2)
VOLUME = types.SimpleNamespace(id='v1', name='volume-1', size=1)
ENTRY = types.SimpleNamespace(pool='volumes', name='bootcache.i1',
                              image_id='i1')


class Recorder:
    """Stands in for processutils.execute; each tool fails as told (its
    next failure per call).  A cryptsetup that does not fail writes the
    start of a LUKS1 header (payload at 2 MiB) into its file, as the real
    one does."""

    def __init__(self, cryptsetup=(), qemu_img=()):
        self.failures = {'cryptsetup': list(cryptsetup),
                         'qemu-img': list(qemu_img)}
        self.calls = []
        self.secret_files = []

    def __call__(self, *cmd):
        self.calls.append(cmd)
        if cmd[0] == 'cryptsetup':
            path = cmd[cmd.index('--key-file') + 1]
        else:
            secret = [a for a in cmd if a.startswith('secret,')][0]
            path = secret.split('file=')[1]
        mode = stat.S_IMODE(os.stat(path).st_mode)
        dir_mode = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
        with open(path) as f:
            self.secret_files.append((path, mode, dir_mode, f.read()))
        if self.failures[cmd[0]]:
            raise self.failures[cmd[0]].pop(0)
        if cmd[0] == 'cryptsetup':
            with open(cmd[-1], 'r+b') as f:
                f.write(luks_header.MAGIC)
                f.seek(luks_header.PAYLOAD_OFFSET_AT)
                f.write(luks_header.PAYLOAD_OFFSET.pack(4096))


class FakeCeph:
    """Stands in for the Ceph seam: rbd create, image writes, the entry
    snapshot's size, the pool's full flags (one answer per check, the
    last repeated)."""

    def __init__(self, monkeypatch, fail_write=None, snapshot_bytes=MiB,
                 flags=((),)):
        self.created, self.writes, self.flag_checks = [], [], 0
        self.fail_write = fail_write
        self.flags = list(flags)
        fake = self

        class Api:
            def create(self, ioctx, name, size, old_format):
                assert old_format is False
                fake.created.append((name, size))

        class Image:
            def write(self, data, offset):
                if fake.fail_write:
                    raise fake.fail_write
                fake.writes.append((len(data), offset, bytes(data[:6])))

            def size(self):
                return snapshot_bytes

        @contextlib.contextmanager
        def open_image(ioctx, name, snapshot=None, read_only=False):
            if snapshot is not None:
                assert (name, snapshot, read_only) == ('bootcache.i1',
                                                       'golden', True)
            yield Image()

        def full_flags(client, pool):
            assert pool == 'volumes'
            fake.flag_checks += 1
            return list(fake.flags.pop(0) if len(fake.flags) > 1
                        else fake.flags[0])
        monkeypatch.setattr(ceph, 'rbd_api', Api)
        monkeypatch.setattr(ceph, 'open_image', open_image)
        monkeypatch.setattr(ceph_pool, 'full_flags', full_flags)

    @contextlib.contextmanager
    def connect(self, pool):
        assert pool == 'volumes'
        yield object(), object()


class Pipeline(import_pipeline.ImagePipeline):
    """The import pipeline whose settings the writer uses; its removal
    of RBD images is recorded (``remove_targets`` is the pipeline's own
    and tested with it)."""

    def __init__(self, settings, connect):
        super().__init__(settings, connect)
        self.removed = []

    def remove_targets(self, targets):
        self.removed.extend(target.name for target in targets)


@pytest.fixture
def conversion_dir(tmp_path):
    return tmp_path / 'conversion'


def writer_for(fake, run, conversion_dir):
    settings = dataclasses.replace(SETTINGS,
                                   conversion_dir=str(conversion_dir))
    pipeline = Pipeline(settings, fake.connect)
    return luks_writer.LuksWriter(pipeline, fake.connect, 'volumes',
                                  execute=run), pipeline


def test_create_formats_a_header_and_writes_it_to_a_new_image(
        monkeypatch, conversion_dir):
    run, fake = Recorder(), FakeCeph(monkeypatch)
    writer, pipeline = writer_for(fake, run, conversion_dir)
    writer.create_container(VOLUME, KEY)
    (cmd,) = run.calls
    assert SECRET not in ' '.join(cmd)
    # Cinder's aes-xts-plain64 with key_size 256: qemu's aes-256 in XTS,
    # a 512-bit master key.
    assert cmd[:-3] == (
        'cryptsetup', 'luksFormat', '--batch-mode', '--type', 'luks1',
        '--cipher', 'aes-xts-plain64', '--key-size', '512',
        '--hash', 'sha256', '--pbkdf-force-iterations', '600000')
    ((path, mode, dir_mode, content),) = run.secret_files
    assert (mode, dir_mode, content) == (0o600, 0o700, SECRET)
    # The passphrase's private directory is in the conversion directory.
    assert os.path.dirname(os.path.dirname(path)) == str(conversion_dir)
    assert cmd[-3:] == ('--key-file', path, os.path.join(
        os.path.dirname(path), luks_header.FILE_NAME))
    assert not os.path.exists(os.path.dirname(path))
    # The header, then exactly the volume's size for the guest.
    assert fake.created == [('volume-1', (2 << 20) + (1 << 30))]
    assert fake.writes == [(2 << 20, 0, luks_header.MAGIC)]
    assert pipeline.removed == []


def test_a_header_cryptsetup_refuses_is_a_clear_error(monkeypatch,
                                                      conversion_dir):
    refused = processutils.ProcessExecutionError(
        exit_code=1, stderr='Cipher rot13-xts-plain64 is not available.\n')
    run, fake = Recorder(cryptsetup=[refused]), FakeCeph(monkeypatch)
    writer, _pipeline = writer_for(fake, run, conversion_dir)
    with pytest.raises(errors.LuksHeaderFailed,
                       match='cipher rot13-xts-plain64, 512-bit master key'
                             '.*not available'):
        writer.create_container(
            VOLUME, encrypted_volumes.LuksKey('rot13-256', 'xts', 'plain64',
                                              SECRET))
    assert fake.created == []
    (path, _mode, _dir, _content), = run.secret_files
    assert not os.path.exists(os.path.dirname(path))


def test_a_failed_header_write_removes_the_image(monkeypatch,
                                                 conversion_dir):
    fake = FakeCeph(monkeypatch, fail_write=OSError('EIO'))
    writer, pipeline = writer_for(fake, Recorder(), conversion_dir)
    with pytest.raises(OSError):
        writer.create_container(VOLUME, KEY)
    assert pipeline.removed == ['volume-1']


def test_a_full_pool_is_refused_before_anything_runs(monkeypatch,
                                                     conversion_dir):
    run = Recorder()
    fake = FakeCeph(monkeypatch, flags=[('full_quota',)])
    writer, _pipeline = writer_for(fake, run, conversion_dir)
    with pytest.raises(errors.VolumePoolFull, match='full_quota'):
        writer.create_container(VOLUME, KEY)
    assert run.calls == [] and fake.created == []


def test_a_pool_that_filled_up_names_itself_after_the_failure(
        monkeypatch, conversion_dir):
    fake = FakeCeph(monkeypatch, fail_write=OSError('Connection timed out'),
                    flags=[(), ('full',)])
    writer, pipeline = writer_for(fake, Recorder(), conversion_dir)
    with pytest.raises(errors.VolumePoolFull):
        writer.create_container(VOLUME, KEY)
    assert fake.flag_checks == 2 and pipeline.removed == ['volume-1']


def test_fill_writes_the_snapshot_into_the_container(monkeypatch,
                                                     conversion_dir):
    run = Recorder()
    # Too little for two writers: one qemu-img converts it all.
    fake = FakeCeph(monkeypatch, snapshot_bytes=MiB)
    writer, pipeline = writer_for(fake, run, conversion_dir)
    writer.write_from_entry(ENTRY, VOLUME, KEY)
    (cmd,) = run.calls
    assert SECRET not in ' '.join(cmd)
    assert '-n' in cmd and '--target-image-opts' in cmd
    assert cmd[-2].startswith('rbd:volumes/bootcache.i1@golden:')
    assert cmd[-1].startswith('driver=luks,key-secret=sec0,file.driver=rbd,'
                              'file.filename=rbd:volumes/volume-1:')
    # The container is create_volume's: none made, none removed.
    assert fake.created == [] and pipeline.removed == []


def test_a_container_left_by_the_create_is_made_then_filled(monkeypatch,
                                                            conversion_dir):
    run = Recorder()
    fake = FakeCeph(monkeypatch, snapshot_bytes=MiB)
    writer, pipeline = writer_for(fake, run, conversion_dir)
    writer.write_from_entry(ENTRY, VOLUME, KEY, make_container=True)
    assert [cmd[0] for cmd in run.calls] == ['cryptsetup', 'qemu-img']
    assert fake.created == [('volume-1', (2 << 20) + (1 << 30))]
    # The caller checked the pool before it got the entry.
    assert fake.flag_checks == 0 and pipeline.removed == []


@pytest.mark.parametrize('length,writers', [(MiB, 1), (GiB, 2)])
@pytest.mark.parametrize('make_container', [False, True])
def test_a_dead_qemu_img_fails_the_fill_after_all_ended(
        monkeypatch, conversion_dir, length, writers, make_container):
    """One qemu-img (too little for two) or one of two slices killed: an
    import write failure, raised once every writer has ended, the
    container removed (whoever made it) and the passphrase's directory
    gone."""
    killed = processutils.ProcessExecutionError(exit_code=-9, stderr='')
    run = Recorder(qemu_img=[killed])
    fake = FakeCeph(monkeypatch, snapshot_bytes=length)
    writer, pipeline = writer_for(fake, run, conversion_dir)
    with pytest.raises(errors.ImportWriteFailed,
                       match='LUKS container of volume-1 failed: '
                             'exit code -9'):
        writer.write_from_entry(ENTRY, VOLUME, KEY,
                                make_container=make_container)
    assert [cmd[0] for cmd in run.calls].count('qemu-img') == writers
    assert pipeline.removed == ['volume-1']
    # The pool was asked whether it is the cause: it is not.
    assert fake.flag_checks == 1
    for path, *_ in run.secret_files:
        assert not os.path.exists(os.path.dirname(path))


def test_a_fill_that_failed_on_a_full_pool_says_so(monkeypatch,
                                                   conversion_dir):
    run = Recorder(qemu_img=[processutils.ProcessExecutionError(
        exit_code=1, stderr='Connection timed out')])
    fake = FakeCeph(monkeypatch, flags=[('full',)])
    writer, pipeline = writer_for(fake, run, conversion_dir)
    with pytest.raises(errors.CephPoolFull, match='full'):
        writer.write_from_entry(ENTRY, VOLUME, KEY)
    assert pipeline.removed == ['volume-1']


def test_fill_writes_slices_with_one_qemu_img_each(monkeypatch,
                                                   conversion_dir):
    run = Recorder()
    fake = FakeCeph(monkeypatch, snapshot_bytes=GiB)
    writer, _pipeline = writer_for(fake, run, conversion_dir)
    writer.write_from_entry(ENTRY, VOLUME, KEY)
    assert len(run.calls) == 2
    windows = set()
    for cmd in run.calls:
        assert SECRET not in ' '.join(cmd)
        source = cmd[cmd.index('--image-opts') + 1]
        target = cmd[cmd.index('--target-image-opts') + 1]
        window = source.split(',file.')[0]
        # The same window of the image and of the container's plaintext.
        assert target.startswith(window + ',file.driver=luks,'
                                 'file.key-secret=sec0,file.file.driver=rbd,'
                                 'file.file.filename=rbd:volumes/volume-1:')
        assert 'file.filename=rbd:volumes/bootcache.i1@golden:' in source
        windows.add(window)
    assert windows == {'driver=raw,offset=0,size=%d' % (512 * MiB),
                       'driver=raw,offset=%d,size=%d' % (512 * MiB,
                                                         512 * MiB)}
    # One secret file for both, gone afterwards.
    assert len({path for path, *_ in run.secret_files}) == 1
    assert not os.path.exists(os.path.dirname(run.secret_files[0][0]))
