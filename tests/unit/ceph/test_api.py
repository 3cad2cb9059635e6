"""The librados/librbd seam, and the factories driver and CLI share."""

import datetime
import errno
import json
import os
import subprocess
import sys
import types
import unittest
from unittest import mock

import ddt

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline


class FakeMonitor:
    def __init__(self, ret=0, out=b'{}', err=''):
        self.answer = (ret, out, err)
        self.asked = []

    def mon_command(self, cmd, inbuf):
        self.asked.append(json.loads(cmd))
        return self.answer


class MonCommandTest(unittest.TestCase):

    def test_asks_for_json_and_decodes_it(self):
        monitor = FakeMonitor(out=b'{"flags": "full"}')
        self.assertEqual(ceph.mon_command(monitor, 'osd dump'),
                         {'flags': 'full'})
        self.assertEqual(monitor.asked, [{'prefix': 'osd dump',
                                          'format': 'json'}])

    def test_text_passes_arguments_as_given(self):
        monitor = FakeMonitor(out=b'0\n')
        self.assertEqual(ceph.mon_command_text(monitor, 'osd create'), '0\n')
        self.assertEqual(monitor.asked, [{'prefix': 'osd create'}])

    def test_a_refused_command_raises(self):
        monitor = FakeMonitor(ret=-13, err='access denied')
        with self.assertRaises(ceph.MonCommandError) as caught:
            ceph.mon_command(monitor, 'osd dump')
        self.assertEqual(caught.exception.ret, -13)
        self.assertEqual(caught.exception.err, 'access denied')
        self.assertIn('ceph osd dump failed (-13): access denied',
                      str(caught.exception))


@ddt.ddt
class FullFlagsTest(unittest.TestCase):
    """``ceph_pool.full_flags`` from a fake monitor: one command, the
    pool's own flags (a real full pool is in the functional tests)."""

    POOLS = [{'pool_name': 'images', 'flags_names': 'hashpspool,full'},
             {'pool_name': 'volumes', 'flags_names': 'hashpspool'}]

    @ddt.data(
        ('volumes', 'hashpspool', []),
        ('volumes', 'hashpspool,full_quota', ['full_quota']),
        ('volumes', 'hashpspool,full_no_quota,nearfull', ['full_no_quota']),
        ('missing', 'hashpspool', []),
    )
    @ddt.unpack
    def test_the_pools_full_flags_from_one_command(self, pool, flags,
                                                   expected):
        from cinder_rbd_bootcache.ceph import pool as ceph_pool
        pools = [dict(self.POOLS[0]),
                 {'pool_name': 'volumes', 'flags_names': flags}]
        monitor = FakeMonitor(out=json.dumps(pools).encode())
        self.assertEqual(expected, ceph_pool.full_flags(monitor, pool))
        self.assertEqual(['osd pool ls'],
                         [asked['prefix'] for asked in monitor.asked])

    def test_a_refused_command_is_no_flags(self):
        from cinder_rbd_bootcache.ceph import pool as ceph_pool
        monitor = FakeMonitor(ret=-13, err='access denied')
        self.assertEqual([], ceph_pool.full_flags(monitor, 'volumes'))

    def test_refuse_if_full_raises_the_callers_error_naming_the_flags(self):
        from cinder_rbd_bootcache.ceph import pool as ceph_pool
        monitor = FakeMonitor(out=json.dumps([
            {'pool_name': 'volumes',
             'flags_names': 'hashpspool,full,full_quota'}]).encode())
        with self.assertRaises(errors.VolumePoolFull) as caught:
            ceph_pool.refuse_if_full(monitor, 'volumes',
                                     errors.VolumePoolFull, volume_id='v1')
        self.assertEqual(
            {'pool': 'volumes', 'flags': 'full, full_quota',
             'volume_id': 'v1'},
            {k: caught.exception.kwargs[k]
             for k in ('pool', 'flags', 'volume_id')})

    def test_refuse_if_full_passes_a_pool_with_room(self):
        from cinder_rbd_bootcache.ceph import pool as ceph_pool
        monitor = FakeMonitor(out=json.dumps(self.POOLS).encode())
        ceph_pool.refuse_if_full(monitor, 'volumes', errors.VolumePoolFull,
                                 volume_id='v1')


class NotFound(Exception):
    pass


class OpenImageTest(unittest.TestCase):

    def setUp(self):
        self.image = mock.Mock()
        self.rbd = types.SimpleNamespace(Image=mock.Mock(
            return_value=self.image), ImageNotFound=NotFound)
        patcher = mock.patch.object(ceph, 'rbd', self.rbd)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_closes_the_image_also_after_an_error(self):
        with self.assertRaises(RuntimeError):
            with ceph.open_image('ioctx', 'name') as image:
                self.assertIs(image, self.image)
                raise RuntimeError
        self.image.close.assert_called_once_with()
        self.rbd.Image.assert_called_once_with(
            'ioctx', 'name', snapshot=None, read_only=False, image_id=None)

    def test_missing_image_raises_unless_missing_ok(self):
        self.rbd.Image.side_effect = NotFound
        with self.assertRaises(NotFound):
            with ceph.open_image('ioctx', 'name'):
                self.fail('opened a missing image')
        with ceph.open_image('ioctx', 'name', missing_ok=True) as image:
            self.assertIsNone(image)

    def test_an_error_inside_is_not_taken_for_a_missing_image(self):
        with self.assertRaises(NotFound):
            with ceph.open_image('ioctx', 'name', missing_ok=True):
                raise NotFound
        self.image.close.assert_called_once_with()


class ConnectTest(unittest.TestCase):

    def test_full_try_and_disconnect(self):
        driver = mock.Mock()
        ioctx = mock.Mock()
        driver._connect_to_rados.return_value = ('client', ioctx)
        connect = ceph.connector(driver, 7)
        with connect('volumes') as (client, got):
            self.assertEqual((client, got), ('client', ioctx))
            ioctx.set_osdmap_full_try.assert_called_once_with()
            driver._disconnect_from_rados.assert_not_called()
        driver._connect_to_rados.assert_called_once_with('volumes',
                                                         timeout=7)
        driver._disconnect_from_rados.assert_called_once_with('client',
                                                              ioctx)


def _configuration(**values):
    """A backend section made for upstream's RBDDriver: no bootcache_*
    options unless given (they read as their defaults)."""
    base = dict(rbd_pool='volumes', rbd_store_chunk_size=4,
                rbd_ceph_conf='/etc/ceph/ceph.conf', rbd_user='cinder')
    base.update(values)
    return types.SimpleNamespace(**base)


class FactoriesTest(unittest.TestCase):

    def test_boot_cache_from_configuration(self):
        found = cache.BootCache.from_configuration(
            _configuration(bootcache_pool='cache', bootcache_max_size_gb=2,
                           bootcache_max_idle_hours=1), 'connect')
        self.assertEqual(found.pool, 'cache')
        self.assertEqual(found.limits.max_bytes, 2 * 1024 ** 3)
        self.assertEqual(found.limits.max_idle_seconds, 3600)
        self.assertEqual(found.limits.max_entries, 0)
        # Without bootcache_pool, the volumes' pool.
        self.assertEqual(cache.BootCache.from_configuration(
            _configuration(), 'connect').pool, 'volumes')

    def test_pipeline_from_configuration(self):
        pipeline = import_pipeline.ImagePipeline.from_configuration(
            _configuration(bootcache_import_writes_in_flight=3), 'connect')
        self.assertEqual(pipeline.settings.block_size, 4 * 1024 ** 2)
        self.assertEqual(pipeline.settings.writes_in_flight, 3)
        self.assertEqual(pipeline.settings.stall_timeout, 120)
        self.assertEqual(pipeline.settings.rbd_user, 'cinder')


class ImportTest(unittest.TestCase):

    def test_the_sandbox_does_not_import_cinder(self):
        # Importing cinder patches eventlet into the process; the e2e
        # tests' process and the sandbox command use the seam's monitor
        # commands and must stay unpatched.
        code = ('import sys, bootcache_testkit.sandbox, '
                'bootcache_testkit.e2e.environment; '
                'print(sorted({"cinder", "eventlet"} & set(sys.modules)))')
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__)))))
        done = subprocess.run([sys.executable, '-c', code], cwd=root,
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), '[]')


class FakeRemovals:
    """``rbd.RBD()`` whose remove and trash_remove answer from a script: a
    real cluster answers ESTALE only while another client's removal of
    the same image is under way, which a test cannot time."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def _answer(self, call):
        self.calls.append(call)
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer

    def remove(self, ioctx, name):
        self._answer(('remove', name))

    def trash_remove(self, ioctx, trash_id, force=False):
        assert force
        self._answer(('trash_remove', trash_id))


def _estale():
    return ceph.rbd.OSError('error removing image', errno=errno.ESTALE)


@unittest.skipIf(ceph.rbd is None, 'needs the rbd binding')
class ConcurrentRemovalTest(unittest.TestCase):

    def setUp(self):
        mock.patch('time.sleep').start()
        self.addCleanup(mock.patch.stopall)

    def _run(self, call, fake):
        with mock.patch.object(ceph, 'rbd_api', return_value=fake):
            return call()

    @staticmethod
    def _remove():
        return ceph.remove_image_waiting_out_others('ioctx', 'e1')

    def test_waits_for_another_removal_then_finds_the_name_free(self):
        fake = FakeRemovals(_estale(), _estale(),
                            ceph.rbd.ImageNotFound('gone'))
        removed = self._run(self._remove, fake)
        self.assertFalse(removed)
        self.assertEqual(len(fake.calls), 3)

    def test_removes_an_image_nobody_else_removes(self):
        fake = FakeRemovals(None)
        self.assertTrue(self._run(self._remove, fake))

    def test_other_errors_are_raised_at_once(self):
        fake = FakeRemovals(ceph.rbd.ImageBusy('busy'))
        with self.assertRaises(ceph.rbd.ImageBusy):
            self._run(self._remove, fake)
        self.assertEqual(len(fake.calls), 1)

    def test_a_trash_item_another_client_removed_is_gone(self):
        fake = FakeRemovals(_estale(), ceph.rbd.ImageNotFound('gone'))
        self.assertFalse(self._run(
            lambda: ceph.trash_remove('ioctx', 't1'), fake))
        self.assertEqual(fake.calls, [('trash_remove', 't1')] * 2)


class RemovalUnderWayTest(unittest.TestCase):
    NOW = datetime.datetime(2026, 11, 25, 12, 0, 0)

    def _item(self, source, seconds_ago):
        return {'id': 't1', 'name': 'bootcache.i1', 'source': source,
                'deletion_time': self.NOW - datetime.timedelta(
                    seconds=seconds_ago)}

    def test_a_fresh_removal_is_left_to_its_remover(self):
        self.assertTrue(ceph.removal_under_way(
            self._item('REMOVING', 1), self.NOW))

    def test_what_a_failed_removal_left_is_swept(self):
        self.assertFalse(ceph.removal_under_way(
            self._item('REMOVING', ceph.CONCURRENT_REMOVAL_WAIT + 1),
            self.NOW))

    def test_an_entry_moved_to_the_trash_is_swept(self):
        self.assertFalse(ceph.removal_under_way(
            self._item('USER', 1), self.NOW))
