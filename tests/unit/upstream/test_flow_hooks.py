"""The flow hook: which encrypted volumes skip the flow's download.

The task here is a fake of Cinder's CreateVolumeFromSpecTask (its driver,
db and methods record calls): what is tested is which path a volume
takes.  tests/functional/test_encrypted_volumes.py runs the real flow.
"""

import inspect
import unittest
from unittest import mock

from cinder_rbd_bootcache.upstream import flow_hooks


class FakeTask:
    def __init__(self, driver):
        self.driver = driver
        self.db = mock.Mock()
        self.calls = []

    def _create_from_image_download(self, *args):
        self.calls.append(('download-path', args))
        if getattr(self, 'fail', None):
            raise self.fail
        return {'from': 'cache'}


def original(task, *args, **kwargs):
    task.calls.append(('flow', args))
    return {'from': 'flow'}


class Driver:
    def __init__(self, accepts):
        self.accepts = accepts

    def encrypted_volume_from_cache(self, context, volume, image_meta):
        if isinstance(self.accepts, Exception):
            raise self.accepts
        return self.accepts


def volume(encrypted=True):
    return mock.Mock(id='v', encryption_key_id='k' if encrypted else None)


class WrapTest(unittest.TestCase):

    def call(self, task, vol):
        wrapped = flow_hooks._wrap(original)
        return wrapped(task, 'ctx', vol, 'loc', 'img', {'id': 'img'}, 'svc')

    def test_accepted_encrypted_volume_skips_the_flows_download(self):
        task = FakeTask(Driver(True))
        self.assertEqual({'from': 'cache'}, self.call(task, volume()))
        self.assertEqual('download-path', task.calls[0][0])

    def test_everything_else_takes_cinders_method(self):
        for task, vol in ((FakeTask(Driver(False)), volume()),
                          (FakeTask(Driver(True)), volume(encrypted=False)),
                          (FakeTask(object()), volume()),
                          (FakeTask(Driver(RuntimeError('db'))), volume())):
            self.assertEqual({'from': 'flow'}, self.call(task, vol))

    def test_a_failure_drops_the_volumes_glance_metadata(self):
        task = FakeTask(Driver(True))
        task.fail = RuntimeError('qemu-img died')
        task.db.volume_glance_metadata_get.return_value = [object()]
        self.assertRaises(RuntimeError, self.call, task, volume())
        delete = task.db.volume_glance_metadata_delete_by_volume
        delete.assert_called_once_with('ctx', 'v')

    def test_a_failure_before_any_glance_metadata_keeps_its_error(self):
        from cinder import exception
        task = FakeTask(Driver(True))
        task.fail = RuntimeError('key manager down')
        task.db.volume_glance_metadata_get.side_effect = (
            exception.GlanceMetadataNotFound(id='v'))
        self.assertRaisesRegex(RuntimeError, 'key manager down',
                               self.call, task, volume())


class InstalledCinderTest(unittest.TestCase):
    """What the hook relies on in the installed Cinder release."""

    def test_the_task_has_both_methods_with_these_arguments(self):
        task = flow_hooks._task_class()
        wrapped = getattr(task._create_from_image_cache_or_download,
                          'bootcache_wrapped',
                          task._create_from_image_cache_or_download)
        self.assertEqual(
            ['self', 'context', 'volume', 'image_location', 'image_id',
             'image_meta', 'image_service', 'update_cache'],
            list(inspect.signature(wrapped).parameters))
        self.assertEqual(
            ['self', 'context', 'volume', 'image_location', 'image_meta',
             'image_service'],
            list(inspect.signature(inspect.unwrap(
                task._create_from_image_download)).parameters))

    def test_install_wraps_once(self):
        task = flow_hooks._task_class()
        before = task._create_from_image_cache_or_download
        try:
            flow_hooks.install()
            once = task._create_from_image_cache_or_download
            flow_hooks.install()
            self.assertIs(once, task._create_from_image_cache_or_download)
        finally:
            task._create_from_image_cache_or_download = before
