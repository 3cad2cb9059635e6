"""encrypted_volumes: which volumes it takes, the key, the commands.

qemu-img is replaced by a recording function here (``execute``) to reach
its failure branches; the functional tests run the real one on Ceph.
"""

import contextlib
import dataclasses
import os
import stat
import sys
import unittest

from cinder import exception
import ddt
from oslo_concurrency import processutils
import pytest

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.encryption import luks_header
from cinder_rbd_bootcache.encryption import volumes as encrypted_volumes
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
TARGET = import_pipeline.Target('volumes', 'volume-1', 1 << 30)


@pytest.fixture(autouse=True)
def conversion_dir(tmp_path, monkeypatch):
    """Scratch space of this test: SETTINGS' conversion_dir."""
    monkeypatch.setattr(sys.modules[__name__], 'SETTINGS',
                        dataclasses.replace(SETTINGS,
                                            conversion_dir=str(tmp_path)))
    return tmp_path


def spec(**changes):
    base = {'provider': 'luks', 'control_location': 'front-end',
            'cipher': 'aes-xts-plain64', 'key_size': 256,
            'encryption_key_id': 'k1'}
    base.update(changes)
    return base


@pytest.mark.parametrize('provider', [
    'luks', 'nova.volume.encryptors.luks.LuksEncryptor',
    'os_brick.encryptors.luks.LuksEncryptor', 'LuksEncryptor'])
def test_luks_front_end_is_ours_by_any_of_its_names(provider):
    assert encrypted_volumes.why_not(spec(provider=provider)) is None


@pytest.mark.parametrize('changes,words', [
    ({'provider': 'luks2'}, 'provider luks2'),
    ({'provider': 'plain'}, 'provider plain'),
    ({'provider': 'nova.volume.encryptors.cryptsetup.CryptsetupEncryptor'},
     'provider plain'),
    ({'control_location': 'back-end'}, 'control_location back-end'),
    ({'cipher': None}, 'no cipher'),
])
def test_everything_else_stays_upstreams(changes, words):
    assert words in encrypted_volumes.why_not(spec(**changes))


def test_key_is_the_hex_of_the_key_managers_bytes(monkeypatch):
    class Key:
        def get_encoded(self):
            return b'\x01\xfe'

    class Manager:
        def get(self, context, key_id):
            assert key_id == 'k1'
            return Key()
    monkeypatch.setattr(encrypted_volumes.castellan_key_manager, 'API',
                        lambda conf: Manager())
    key = encrypted_volumes.luks_key(None, spec())
    assert (key.cipher_alg, key.cipher_mode, key.ivgen_alg,
            key.passphrase) == ('aes-256', 'xts', 'plain64', '01fe')
    assert '01fe' not in repr(key)


def test_unreachable_key_manager_is_a_key_manager_error(monkeypatch):
    class Manager:
        def get(self, context, key_id):
            raise ConnectionError('barbican at http://kms:9311 refused')
    monkeypatch.setattr(encrypted_volumes.castellan_key_manager, 'API',
                        lambda conf: Manager())
    with pytest.raises(exception.KeyManagerError, match='refused'):
        encrypted_volumes.luks_key(None, spec())


def test_cipher_without_iv_mode_is_an_invalid_volume_type():
    with pytest.raises(exception.InvalidVolumeType):
        encrypted_volumes.luks_key(None, spec(cipher='aes-xts'))


class Recorder:
    """Stands in for processutils.execute; fails as told.  A cryptsetup
    that does not fail writes the start of a LUKS1 header (payload at
    2 MiB) into its file, as the real one does."""

    def __init__(self, failures=()):
        self.failures = list(failures)
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
        if self.failures:
            raise self.failures.pop(0)
        if cmd[0] == 'cryptsetup':
            with open(cmd[-1], 'r+b') as f:
                f.write(luks_header.MAGIC)
                f.seek(luks_header.PAYLOAD_OFFSET_AT)
                f.write(luks_header.PAYLOAD_OFFSET.pack(4096))


class FakeCeph:
    """Stands in for the Ceph seam (connect, rbd create, image writes):
    a unit test cannot make librbd fail a write on demand."""

    def __init__(self, monkeypatch, fail_write=None):
        self.created, self.writes = [], []
        self.fail_write = fail_write
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

        @contextlib.contextmanager
        def open_image(ioctx, name):
            yield Image()
        monkeypatch.setattr(ceph, 'rbd_api', Api)
        monkeypatch.setattr(ceph, 'open_image', open_image)

    @contextlib.contextmanager
    def connect(self, pool):
        yield object(), object()


def test_create_formats_a_header_and_writes_it_to_a_new_image(
        monkeypatch, conversion_dir):
    run, removed, fake = Recorder(), [], FakeCeph(monkeypatch)
    encrypted_volumes.create_container(TARGET, KEY, SETTINGS, fake.connect,
                                       lambda: removed.append(1), run)
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
    # In a private directory in the backend's conversion_dir.
    assert os.path.dirname(os.path.dirname(path)) == str(conversion_dir)
    assert cmd[-3:] == ('--key-file', path, os.path.join(
        os.path.dirname(path), luks_header.FILE_NAME))
    assert not os.path.exists(os.path.dirname(path))
    # The header, then exactly the volume's size for the guest.
    assert fake.created == [('volume-1', (2 << 20) + (1 << 30))]
    assert fake.writes == [(2 << 20, 0, luks_header.MAGIC)]
    assert removed == []


def test_a_header_cryptsetup_refuses_is_a_clear_error(monkeypatch):
    refused = processutils.ProcessExecutionError(
        exit_code=1, stderr='Cipher rot13-xts-plain64 is not available.\n')
    run, removed = Recorder([refused]), []
    fake = FakeCeph(monkeypatch)
    with pytest.raises(errors.LuksHeaderFailed,
                       match='cipher rot13-xts-plain64, 512-bit master key'
                             '.*not available'):
        encrypted_volumes.create_container(
            TARGET, encrypted_volumes.LuksKey('rot13-256', 'xts', 'plain64',
                                              SECRET),
            SETTINGS, fake.connect, lambda: removed.append(1), run)
    assert fake.created == []
    (path, _mode, _dir, _content), = run.secret_files
    assert not os.path.exists(os.path.dirname(path))


def test_a_failed_header_write_removes_the_image(monkeypatch):
    removed = []
    fake = FakeCeph(monkeypatch, fail_write=OSError('EIO'))
    with pytest.raises(OSError):
        encrypted_volumes.create_container(TARGET, KEY, SETTINGS,
                                           fake.connect,
                                           lambda: removed.append(1),
                                           Recorder())
    assert removed == [1]


def entry_snapshot(monkeypatch, length):
    """``connect`` for ``fill``, whose entry snapshot is ``length`` bytes
    (the Ceph seam's ``open_image`` stands in for librbd)."""
    class Snapshot:
        def size(self):
            return length

    @contextlib.contextmanager
    def open_image(ioctx, name, snapshot=None, read_only=False):
        assert (name, snapshot, read_only) == ('bootcache.i1', 'golden',
                                               True)
        yield Snapshot()
    monkeypatch.setattr(ceph, 'open_image', open_image)

    @contextlib.contextmanager
    def connect(pool):
        assert pool == 'volumes'
        yield object(), object()
    return connect


def test_fill_writes_the_snapshot_into_the_container(monkeypatch):
    run = Recorder()
    # Too little for two writers: one qemu-img converts it all.
    encrypted_volumes.fill('volumes', 'bootcache.i1', 'golden', TARGET, KEY,
                           'i1', SETTINGS, entry_snapshot(monkeypatch, MiB),
                           run)
    (cmd,) = run.calls
    assert SECRET not in ' '.join(cmd)
    assert '-n' in cmd and '--target-image-opts' in cmd
    assert cmd[-2].startswith('rbd:volumes/bootcache.i1@golden:')
    assert cmd[-1].startswith('driver=luks,key-secret=sec0,file.driver=rbd,'
                              'file.filename=rbd:volumes/volume-1:')


@pytest.mark.parametrize('length,writers', [(MiB, 1), (GiB, 2)])
def test_a_dead_qemu_img_fails_the_fill_after_all_ended(monkeypatch, length,
                                                        writers):
    """One qemu-img (too little for two) or one of two slices killed: an
    import write failure, raised once every writer has ended, and the
    passphrase's directory gone."""
    killed = processutils.ProcessExecutionError(exit_code=-9, stderr='')
    run = Recorder([killed])
    with pytest.raises(errors.ImportWriteFailed, match='exit code -9'):
        encrypted_volumes.fill('volumes', 'bootcache.i1', 'golden', TARGET,
                               KEY, 'i1', SETTINGS,
                               entry_snapshot(monkeypatch, length), run)
    assert len(run.calls) == writers
    (path,) = {path for path, *_ in run.secret_files}
    assert not os.path.exists(os.path.dirname(path))


def test_commas_in_paths_cannot_inject_options():
    cmd = encrypted_volumes.convert_command('rbd:p/a@s', 'rbd:p/b:conf=/x,y',
                                            '/tmp/d,driver=file/p')
    assert 'file=/tmp/d,,driver=file/p' in cmd[cmd.index('--object') + 1]
    assert cmd[-1].endswith('conf=/x,,y')


def test_a_full_pool_is_refused_before_anything_runs(monkeypatch):
    run, fake = Recorder(), FakeCeph(monkeypatch)

    def full():
        raise errors.VolumePoolFull(pool='volumes', volume_id='v1',
                                    flags='full_quota')
    with pytest.raises(errors.VolumePoolFull):
        encrypted_volumes.create_container(TARGET, KEY, SETTINGS,
                                           fake.connect, lambda: None, run,
                                           full)
    assert run.calls == [] and fake.created == []


def test_a_pool_that_filled_up_names_itself_after_the_failure(monkeypatch):
    checks, removed = [], []
    fake = FakeCeph(monkeypatch, fail_write=OSError('Connection timed out'))

    def full():
        checks.append(1)
        if len(checks) > 1:
            raise errors.VolumePoolFull(pool='volumes', volume_id='v1',
                                        flags='full')
    with pytest.raises(errors.VolumePoolFull):
        encrypted_volumes.create_container(TARGET, KEY, SETTINGS,
                                           fake.connect,
                                           lambda: removed.append(1),
                                           Recorder(), full)
    assert len(checks) == 2 and removed == [1]


@ddt.ddt
class CryptsetupNamesTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        # (decode_cipher's alg, mode, ivgen) -> (--cipher, --key-size)
        (('aes-256', 'xts', 'plain64'), ('aes-xts-plain64', 512)),
        (('aes-128', 'xts', 'plain64'), ('aes-xts-plain64', 256)),
        (('aes-256', 'cbc', 'essiv:sha256'), ('aes-cbc-essiv:sha256', 256)),
        (('serpent-256', 'xts', 'plain64'), ('serpent-xts-plain64', 512)),
    )
    def test_cipher_and_key_size(self, spec, expected):
        self.assertEqual(expected, luks_header.cryptsetup_cipher(*spec))

    def test_an_algorithm_without_a_size_is_refused(self):
        self.assertRaises(ValueError, luks_header.cryptsetup_cipher,
                          'aes', 'xts', 'plain64')

    def test_no_header_no_payload(self):
        self.assertRaises(ValueError, luks_header.payload_offset,
                          b'\0' * 512)


def test_without_cryptsetup_encrypted_volumes_stay_upstreams(monkeypatch):
    monkeypatch.setattr(luks_header, 'available', lambda: False)
    assert 'cryptsetup' in encrypted_volumes.why_not(spec())


@ddt.ddt
class SlicesTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        # (length, writers, expected (offset, size) parts)
        (GiB, 2, [(0, 512 * MiB), (512 * MiB, 512 * MiB)]),
        (GiB, 1, [(0, GiB)]),
        # The last part takes what does not fill whole objects.
        (GiB + 512, 2, [(0, 512 * MiB), (512 * MiB, 512 * MiB + 512)]),
        (12 * MiB, 2, [(0, 4 * MiB), (4 * MiB, 8 * MiB)]),
        (10 * MiB, 4, [(0, 4 * MiB), (4 * MiB, 4 * MiB), (8 * MiB, 2 * MiB)]),
        # Too little for two whole objects, or not sliceable by qemu's raw
        # driver (not a multiple of 512), or empty: one part.
        (6 * MiB, 2, [(0, 6 * MiB)]),
        (GiB + 1, 2, [(0, GiB + 1)]),
        (0, 2, [(0, 0)]),
    )
    def test_parts(self, length, writers, expected):
        parts = encrypted_volumes.slices(length, writers)
        self.assertEqual(expected, parts)
        self.assertEqual(length, sum(size for _offset, size in parts))
        self.assertTrue(all(offset % encrypted_volumes.SLICE_ALIGN == 0
                            for offset, _size in parts))


def test_fill_writes_slices_with_one_qemu_img_each(monkeypatch):
    run = Recorder()
    encrypted_volumes.fill('volumes', 'bootcache.i1', 'golden', TARGET, KEY,
                           'i1', SETTINGS, entry_snapshot(monkeypatch, GiB),
                           run)
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
