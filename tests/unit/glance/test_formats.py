"""format_inspector rules on real files made by qemu-img at test time."""

import os
import struct
import subprocess
import tempfile
import unittest

import ddt

from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance import formats as image_format


def qemu_img_create(directory, name, fmt, *options, size='16M'):
    path = os.path.join(directory, name)
    subprocess.run(['qemu-img', 'create', '-q', '-f', fmt, *options, path,
                    size], check=True)
    return path


@ddt.ddt
class CheckFileTest(unittest.TestCase):

    def setUp(self):
        self._dir = tempfile.TemporaryDirectory()
        self.dir = self._dir.name
        self.addCleanup(self._dir.cleanup)

    @ddt.data(('qcow2', 'qcow2'), ('vmdk', 'vmdk'), ('vhdx', 'vhdx'),
              ('vpc', 'vhd'), ('vdi', 'vdi'), ('raw', 'raw'))
    @ddt.unpack
    def test_good_files_give_their_virtual_size(self, qemu_fmt, disk_format):
        path = qemu_img_create(self.dir, 'x', qemu_fmt)
        size = image_format.check_file(path, disk_format, 'img')
        self.assertGreaterEqual(size, 16 * 1024 * 1024)

    @ddt.data(
        (('-b', '/etc/hostname', '-F', 'raw'), 'backing_file'),
        # In the test's own directory, removed with it.
        (('-o', 'data_file={dir}/data.raw'), 'data_file'),
    )
    @ddt.unpack
    def test_qcow2_that_reaches_outside_is_refused(self, options, check):
        options = [o.format(dir=self.dir) for o in options]
        path = qemu_img_create(self.dir, 'x', 'qcow2', *options)
        with self.assertRaises(errors.ImageUnsafe) as caught:
            image_format.check_file(path, 'qcow2', 'img')
        self.assertIn(check, str(caught.exception))

    @ddt.data(('qcow2', 'raw'), ('raw', 'qcow2'), ('vmdk', 'qcow2'))
    @ddt.unpack
    def test_content_must_match_the_claim(self, real, claimed):
        path = qemu_img_create(self.dir, 'x', real)
        with self.assertRaises(errors.ImageFormatMismatch):
            image_format.check_file(path, claimed, 'img')

    def test_raw_head_of_a_qcow2_is_refused(self):
        path = qemu_img_create(self.dir, 'x', 'qcow2')
        with open(path, 'rb') as f:
            head = f.read(image_format.HEAD_BYTES)
        with self.assertRaises(errors.ImageFormatMismatch):
            image_format.check_raw_head(head, 'img')

    def test_raw_head_with_a_partition_table_is_raw(self):
        # An MBR with one Linux partition from sector 2048, as most raw
        # cloud images start; format_inspector calls it 'gpt'.
        mbr = bytearray(512)
        mbr[446:462] = struct.pack('<B3sB3sII', 0, b'\0\0\0', 0x83,
                                   b'\0\0\0', 2048, 30000)
        mbr[510:512] = b'\x55\xaa'
        head = bytes(mbr) + bytes(image_format.HEAD_BYTES - 512)
        image_format.check_raw_head(head, 'img')

    @ddt.data(
        ('qcow2', ()), ('vmdk', ()),
        ('vmdk', ('-o', 'subformat=streamOptimized')), ('vhdx', ()),
        ('vpc', ()), ('vdi', ()), ('qed', ()),
    )
    @ddt.unpack
    def test_snapshot_head_of_another_format_is_refused(self, qemu_fmt,
                                                        options):
        """What the rbd-store clone path reads of Glance's snapshot is
        enough for the verdict the download path reaches on its head."""
        path = qemu_img_create(self.dir, 'x', qemu_fmt, *options)
        with open(path, 'rb') as f:
            data = f.read(image_format.HEAD_BYTES)
        data += bytes(image_format.HEAD_BYTES - len(data))
        verdicts = []
        for length in (image_format.SNAPSHOT_HEAD_BYTES,
                       image_format.HEAD_BYTES):
            with self.assertRaises(errors.ImageFormatMismatch) as caught:
                image_format.check_raw_head(data[:length], 'img')
            verdicts.append(str(caught.exception))
        self.assertEqual(verdicts[0], verdicts[1])
        self.assertIn('disk_format is raw but its content is', verdicts[0])

    @ddt.data(
        # A LUKS1 header (qemu-img's luks times its key derivation, which
        # fails on a busy machine; the magic and version are what count).
        (0, b'LUKS\xba\xbe\x00\x01', 'luks'),
        # An ISO 9660 primary volume descriptor at 32 KiB, the deepest
        # signature format_inspector matches on.
        (32768, b'\x01CD001', 'iso'),
    )
    @ddt.unpack
    def test_snapshot_head_holds_the_signature(self, offset, signature,
                                               detected):
        head = bytearray(image_format.SNAPSHOT_HEAD_BYTES)
        head[offset:offset + len(signature)] = signature
        self.assertEqual(image_format.SNAPSHOT_HEAD_BYTES, len(head))
        with self.assertRaises(errors.ImageFormatMismatch) as caught:
            image_format.check_raw_head(bytes(head), 'img')
        self.assertIn('content is %s.' % detected, str(caught.exception))

    def test_snapshot_head_of_raw_content_is_raw(self):
        path = qemu_img_create(self.dir, 'x', 'raw')
        with open(path, 'rb') as f:
            image_format.check_raw_head(
                f.read(image_format.SNAPSHOT_HEAD_BYTES), 'img')


@ddt.ddt
class CheckStreamTest(unittest.TestCase):
    """``check_stream`` (what a staging image or a store snapshot gets,
    through ``sources.RBDReader``) reaches ``check_file``'s verdicts."""

    def setUp(self):
        self._dir = tempfile.TemporaryDirectory()
        self.dir = self._dir.name
        self.addCleanup(self._dir.cleanup)

    def _check(self, path, disk_format):
        with open(path, 'rb') as f:
            return image_format.check_stream(f, os.path.getsize(path),
                                             disk_format, 'img')

    @ddt.data(('qcow2', 'qcow2'), ('vmdk', 'vmdk'), ('vhdx', 'vhdx'),
              ('vpc', 'vhd'), ('vdi', 'vdi'))
    @ddt.unpack
    def test_same_virtual_size_as_check_file(self, qemu_fmt, disk_format):
        path = qemu_img_create(self.dir, 'x', qemu_fmt)
        self.assertEqual(image_format.check_file(path, disk_format, 'img'),
                         self._check(path, disk_format))

    @ddt.data(
        (('qcow2', '-b', '/etc/hostname', '-F', 'raw'), 'qcow2',
         errors.ImageUnsafe),
        (('qcow2',), 'vmdk', errors.ImageFormatMismatch),
        (('vmdk',), 'qcow2', errors.ImageFormatMismatch),
    )
    @ddt.unpack
    def test_same_refusals_as_check_file(self, made, claimed, error):
        path = qemu_img_create(self.dir, 'x', *made)
        with self.assertRaises(error):
            self._check(path, claimed)
