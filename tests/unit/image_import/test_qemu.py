"""qemu-img's rbd spec, its progress, running several at once, its
check of an image's metadata (image_import.qemu)."""

import os
import subprocess
import tempfile
import threading
import unittest
from unittest import mock

import ddt
from oslo_concurrency import processutils

from bootcache_testkit.harness import disk_images
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.image_import import qemu


class RbdSpecTest(unittest.TestCase):

    def test_colons_are_escaped(self):
        self.assertEqual(
            'rbd:vol\\:s/volume-1:conf=/etc/ceph/a\\:b.conf:id=cinder'
            ':rados_osd_op_timeout=30',
            qemu.rbd_spec('vol:s', 'volume-1', 'cinder',
                          '/etc/ceph/a:b.conf', 30))


class RunWithProgressTest(unittest.TestCase):
    """A stand-in command prints what ``qemu-img convert -p`` prints."""

    def tracker(self):
        from cinder_rbd_bootcache.image_import import progress
        return progress.ImportProgress('img', 't', 1000, interval=3600)

    def test_percentages_become_bytes(self):
        tracker = self.tracker()
        qemu.run_with_progress(
            ['sh', '-c', r"printf '    (0.00/100%%)\r    (25.50/100%%)\r"
             r"    (100.00/100%%)\r'"], tracker)
        self.assertEqual(1000, tracker.done)

    def test_failure_keeps_stderr(self):
        from oslo_concurrency import processutils
        with self.assertRaises(processutils.ProcessExecutionError) as caught:
            qemu.run_with_progress(
                ['sh', '-c', 'echo broken >&2; exit 3'], self.tracker())
        self.assertEqual(3, caught.exception.exit_code)
        self.assertIn('broken', caught.exception.stderr)


class RunTogetherTest(unittest.TestCase):

    def test_every_call_runs_the_first_in_this_thread(self):
        ran = []

        def call(n):
            return lambda: ran.append((n, threading.current_thread().name))
        qemu.run_together([call(0), call(1), call(2)], name='together')
        self.assertEqual(sorted(ran), [
            (0, threading.current_thread().name), (1, 'together'),
            (2, 'together')])

    def test_the_first_failure_is_raised_once_all_have_ended(self):
        failed, ended = threading.Event(), threading.Event()

        def first():
            failed.set()
            raise ValueError('first')

        def second():
            # Ends only after the first call has failed.
            failed.wait()
            ended.set()
        with self.assertRaisesRegex(ValueError, 'first'):
            qemu.run_together([first, second], name='together')
        self.assertTrue(ended.is_set())

    def test_a_failure_in_a_thread_is_raised_in_the_caller(self):
        def fails():
            raise ValueError('second')
        with self.assertRaisesRegex(ValueError, 'second'):
            qemu.run_together([lambda: None, fails], name='together')

    def test_nothing_to_run(self):
        qemu.run_together([], name='together')


def _qemu_io_write(path, qemu_format):
    subprocess.run(['qemu-io', '-f', qemu_format, '-c',
                    'write -P 0x5a 0 1M', path],
                   check=True, stdout=subprocess.DEVNULL)


def _image(directory, disk_format, damage=None):
    """A 64 MiB image of ``disk_format`` whose first MiB holds data,
    made by qemu-img and qemu-io, then damaged (``disk_images``)."""
    qemu_format = qemu.image_format.QEMU_FORMATS[disk_format]
    path = os.path.join(directory, 'disk.%s' % disk_format)
    subprocess.run(['qemu-img', 'create', '-q', '-f', qemu_format, path,
                    '64M'], check=True)
    _qemu_io_write(path, qemu_format)
    if damage == 'unreadable':
        # A cluster size qemu refuses: the image cannot even be opened.
        with open(path, 'r+b') as f:
            f.seek(20)
            f.write((40).to_bytes(4, 'big'))
    elif damage:
        disk_images.damage_qcow2(path, damage)
    return path


def _exit_code(cmd):
    return subprocess.run(cmd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode


#: (disk_format, damage, what ``qemu-img check`` exits with, whether
#: check_image refuses the image).  qemu-img checks qcow2, vmdk, vhdx and
#: vdi; it has no check for vhd (vpc), which passes unchecked.
CASES = [
    ('qcow2', None, qemu.CHECK_OK, False),
    ('qcow2', 'leak', qemu.CHECK_LEAKS, False),
    ('qcow2', 'beyond-eof', qemu.CHECK_CORRUPT, True),
    ('qcow2', 'unreadable', qemu.CHECK_INCOMPLETE, True),
    ('vmdk', None, qemu.CHECK_OK, False),
    ('vhdx', None, qemu.CHECK_OK, False),
    ('vdi', None, qemu.CHECK_OK, False),
    ('vhd', None, qemu.CHECK_UNSUPPORTED, False),
]


@ddt.ddt
class CheckImageTest(unittest.TestCase):
    """Real qemu-img on real files made here."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    @ddt.idata(('%s-%s' % (case[0], case[1] or 'healthy'), case)
               for case in CASES)
    @ddt.unpack
    def test_check(self, _name, case):
        disk_format, damage, exit_code, refused = case
        path = _image(self.dir, disk_format, damage)
        qemu_format = qemu.image_format.QEMU_FORMATS[disk_format]
        # What qemu-img itself says of the file: the case is what it says.
        self.assertEqual(exit_code, _exit_code(
            ['qemu-img', 'check', '-f', qemu_format, path]))
        if refused:
            with self.assertRaises(errors.ImageCorrupt) as caught:
                qemu.check_image(path, disk_format, 'image-1')
            message = str(caught.exception)
            self.assertIn('Image image-1 is corrupt', message)
            self.assertIn('must upload it again', message)
        else:
            qemu.check_image(path, disk_format, 'image-1')

    def test_the_corruption_converts_without_error(self):
        # Why the check is needed: qemu-img convert exits 0 on the corrupt
        # image and hands zeros for the cluster beyond the end of the file.
        path = _image(self.dir, 'qcow2', 'beyond-eof')
        raw = os.path.join(self.dir, 'out.raw')
        self.assertEqual(0, _exit_code(
            ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', path, raw]))
        with open(raw, 'rb') as f:
            self.assertEqual(bytes(4096), f.read(4096))
        with self.assertRaisesRegex(errors.ImageCorrupt,
                                    'found 2 corruptions'):
            qemu.check_image(path, 'qcow2', 'image-1')

    def test_leaks_are_logged(self):
        path = _image(self.dir, 'qcow2', 'leak')
        with mock.patch.object(qemu.LOG, 'info') as info:
            qemu.check_image(path, 'qcow2', 'image-1')
        ((message, values),) = [call.args for call in info.call_args_list]
        self.assertIn('leaked clusters', message)
        self.assertEqual({'leaks': 1, 'image': 'image-1'}, values)

    def test_the_check_runs_within_cinders_introspection_limits(self):
        calls = []

        def execute(*cmd, **kwargs):
            calls.append((cmd, kwargs))
            return '{}', ''
        qemu.check_image('rbd:images/i@snap:conf=/c', 'vmdk', 'image-1',
                         execute=execute)
        ((cmd, kwargs),) = calls
        self.assertEqual(('env', 'LC_ALL=C', 'qemu-img', 'check',
                          '--output=json', '-f', 'vmdk',
                          'rbd:images/i@snap:conf=/c'), cmd)
        # The limits qemu-img info runs under in this release of Cinder
        # (tests/unit/upstream/test_compat.py checks where they come from).
        limits = qemu.compat.qemu_img_limits()
        self.assertEqual((limits.cpu_time, limits.address_space),
                         (kwargs['prlimit'].cpu_time,
                          kwargs['prlimit'].address_space))
        self.assertTrue(limits.cpu_time and limits.address_space)

    def test_a_check_killed_by_its_limits_refuses_the_image(self):
        # A signal (the CPU limit's SIGXCPU) cannot be had from a real
        # qemu-img on a small file: the failure is handed in.
        def execute(*cmd, **kwargs):
            raise processutils.ProcessExecutionError(
                exit_code=-24, stdout='', stderr='', cmd=' '.join(cmd))
        with self.assertRaisesRegex(errors.ImageCorrupt, 'exit code -24'):
            qemu.check_image('/x', 'qcow2', 'image-1', execute=execute)


class RbdSpecSnapshotTest(unittest.TestCase):

    def test_snapshot_follows_the_name(self):
        self.assertEqual(
            'rbd:images/i1@snap:conf=/etc/ceph/ceph.conf:id=cinder'
            ':rados_osd_op_timeout=30',
            qemu.rbd_spec('images', 'i1', 'cinder', '/etc/ceph/ceph.conf',
                          30, snapshot='snap'))


class ConverterTest(unittest.TestCase):
    """``Converter.convert`` checks its source before any qemu-img runs,
    and converts what the checks read."""

    def setUp(self):
        from cinder_rbd_bootcache.glance.facts import ImageFacts
        from cinder_rbd_bootcache.image_import import settings
        from cinder_rbd_bootcache.image_import import targets
        self.facts = ImageFacts(id='img', disk_format='qcow2')
        self.settings = settings.Settings(
            block_size=4 << 20, writes_in_flight=8, stall_timeout=30,
            progress_interval=10, conversion_dir='/tmp',
            ceph_conf='/etc/ceph.conf', rbd_user='cinder',
            luks_pbkdf2_iterations=600000, luks_writers=2)
        self.targets = [targets.Target('volumes', 'volume-1', 1 << 30),
                        targets.Target('volumes', 'bootcache.img', 1 << 30)]
        self.commands = []
        # qemu-img check runs on real files in CheckImageTest; these
        # sources are names only.
        patcher = mock.patch.object(qemu, 'check_image')
        self.check_image = patcher.start()
        self.addCleanup(patcher.stop)
        self.converter = qemu.Converter(
            self.settings, connect=None,
            execute=lambda cmd, tracker: self.commands.append(cmd))

    def source(self, check):
        from cinder_rbd_bootcache.image_import import sources
        return sources.Source('rbd:images/img@snap:conf=x', check,
                              'images/img@snap')

    def test_every_target_reads_the_source(self):
        self.converter.convert(self.source(lambda: 1 << 20), self.facts,
                               self.targets)
        self.assertEqual(['rbd:images/img@snap:conf=x'] * 2,
                         sorted(cmd[-2] for cmd in self.commands))
        self.assertEqual(['qemu-img', 'convert', '-p', '-f', 'qcow2'],
                         self.commands[0][:5])

    def test_refused_source_runs_no_qemu_img(self):
        from cinder_rbd_bootcache import errors

        def refuse():
            raise errors.ImageUnsafe(image_id='img', reason='backing file')
        with self.assertRaises(errors.ImageUnsafe):
            self.converter.convert(self.source(refuse), self.facts,
                                   self.targets)
        self.assertEqual([], self.commands)

    def test_too_large_runs_no_qemu_img(self):
        from cinder_rbd_bootcache import errors
        with self.assertRaises(errors.ImageLargerThanVolume):
            self.converter.convert(self.source(lambda: 2 << 30), self.facts,
                                   self.targets)
        self.assertEqual([], self.commands)

    def test_a_source_is_checked_once(self):
        checks = []

        def check():
            checks.append(1)
            return 1 << 20
        source = self.source(check)
        self.converter.convert(source, self.facts, self.targets[:1])
        self.converter.convert(source, self.facts, self.targets[1:])
        self.assertEqual([1], checks)
        self.check_image.assert_called_once_with(
            'rbd:images/img@snap:conf=x', disk_format='qcow2',
            image_id='img')
        self.assertEqual(2, len(self.commands))


class CheckImageUnreachableTest(unittest.TestCase):
    """An ``rbd:`` source whose cluster cannot be reached is not called
    corrupt: qemu-img exits 1 (check not completed) as for an image it
    cannot parse, and only its message tells the two apart.  Real
    qemu-img, on a ceph.conf naming no monitor."""

    def test_unreachable_cluster_is_unreadable_not_corrupt(self):
        with tempfile.TemporaryDirectory() as tmp:
            conf = os.path.join(tmp, 'ceph.conf')
            with open(conf, 'w') as f:
                f.write('[global]\n')
            spec = qemu.rbd_spec('images', 'img', 'cinder', conf, 5,
                                 snapshot='snap')
            with self.assertRaises(errors.ImageSourceUnreadable) as caught:
                qemu.check_image(spec, 'qcow2', 'image-1')
        self.assertIn('images/img@snap', str(caught.exception))
