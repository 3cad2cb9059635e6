"""qemu-img's rbd spec, its progress, running several at once
(image_import.qemu)."""

import threading
import unittest

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
        self.assertEqual(2, len(self.commands))
