"""commands: the slices parallel qemu-img write, and options that no
path can extend."""

import os
import stat
import unittest

import ddt

from cinder_rbd_bootcache.encryption import commands

MiB = 1 << 20
GiB = 1 << 30


def test_commas_in_paths_cannot_inject_options():
    cmd = commands.convert_command('rbd:p/a@s', 'rbd:p/b:conf=/x,y',
                                   '/tmp/d,driver=file/p')
    assert 'file=/tmp/d,,driver=file/p' in cmd[cmd.index('--object') + 1]
    assert cmd[-1].endswith('conf=/x,,y')


def test_commas_in_slice_paths_cannot_inject_options():
    cmd = commands.slice_command('rbd:p/a@s:conf=/x,y', 'rbd:p/b:conf=/x,y',
                                 '/tmp/d,driver=file/p', 0, 4 * MiB)
    assert 'file=/tmp/d,,driver=file/p' in cmd[cmd.index('--object') + 1]
    assert cmd[cmd.index('--image-opts') + 1].endswith('conf=/x,,y')
    assert cmd[-1].endswith('conf=/x,,y')


def test_a_secret_file_is_private_and_removed(tmp_path):
    base = tmp_path / 'conversion'
    with commands.secret_file('s3cret', str(base)) as path:
        assert path.startswith(str(base) + '/bootcache-luks-')
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path) as f:
            assert f.read() == 's3cret'
    assert list(base.iterdir()) == []


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
        parts = commands.slices(length, writers)
        self.assertEqual(expected, parts)
        self.assertEqual(length, sum(size for _offset, size in parts))
        self.assertTrue(all(offset % commands.SLICE_ALIGN == 0
                            for offset, _size in parts))
