"""A clone of a boot-cache entry that an eviction on another host removes
at that moment is retried once with a fresh lookup (bootcache.cloning).

Fakes librbd: the window between an eviction's unprotect and its snapshot
removal is milliseconds wide on a real cluster (the functional race test,
tests/functional/test_cache_scale.py, hits it only by chance).
"""

import unittest
from unittest import mock

import ddt

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.bootcache import cloning


class FakeRBD:
    class ImageNotFound(Exception):
        pass

    class InvalidArgument(Exception):
        pass

    class ImageBusy(Exception):
        pass


def _entry():
    return cache.Entry('volumes', 'bootcache.img', 'img')


@ddt.ddt
class CloneEntryRetryTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.driver = mock.Mock(rbd=FakeRBD)
        patcher = mock.patch.object(cloning, 'entry_for',
                                    return_value=_entry())
        self.entry_for = patcher.start()
        self.addCleanup(patcher.stop)

    def _clone_entry(self):
        return cloning.clone_entry(self.driver, None, mock.Mock(id='v'),
                                   None, mock.Mock(id='img'), None,
                                   _entry())

    @ddt.data(FakeRBD.ImageNotFound, FakeRBD.InvalidArgument)
    def test_entry_removed_under_the_clone_is_looked_up_again(self, error):
        self.driver._clone.side_effect = [error('gone'), {'a': 1}]
        update = self._clone_entry()
        self.assertEqual({'a': 1, 'provider_location': None}, update)
        self.assertEqual(2, self.driver._clone.call_count)
        self.entry_for.assert_called_once()
        self.driver._resize.assert_called_once()

    def test_no_entry_on_the_second_look_raises_the_first_error(self):
        self.entry_for.return_value = None
        self.driver._clone.side_effect = FakeRBD.InvalidArgument('x')
        with self.assertRaises(FakeRBD.InvalidArgument):
            self._clone_entry()

    def test_other_errors_are_not_retried(self):
        self.driver._clone.side_effect = FakeRBD.ImageBusy('busy')
        with self.assertRaises(FakeRBD.ImageBusy):
            self._clone_entry()
        self.entry_for.assert_not_called()
