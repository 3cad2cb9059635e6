"""A clone of a boot-cache entry that an eviction on another host removes
at that moment is retried, up to ``CLONE_ATTEMPTS`` attempts in all:
looked up and cloned under the image's population lock
(``BootCache.clone_held``), or, when the entry is gone, populated again
(``entry_for``) and cloned (bootcache.cloning).

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
        # clone_held: the entry is still there, looked up under the lock.
        self.held_entry = _entry()
        self.driver._boot_cache.return_value.clone_held.side_effect = (
            lambda facts, clone: (clone(self.held_entry)
                                  if self.held_entry else None))
        patcher = mock.patch.object(cloning, 'entry_for',
                                    return_value=_entry())
        self.entry_for = patcher.start()
        self.addCleanup(patcher.stop)

    def _clone_entry(self):
        return cloning.clone_entry(self.driver, None, mock.Mock(id='v'),
                                   None, mock.Mock(id='img'), None,
                                   _entry())

    @ddt.data(FakeRBD.ImageNotFound, FakeRBD.InvalidArgument)
    def test_entry_removed_under_the_clone_is_cloned_under_the_lock(
            self, error):
        self.driver._clone.side_effect = [error('gone'), {'a': 1}]
        update = self._clone_entry()
        self.assertEqual({'a': 1, 'provider_location': None}, update)
        self.assertEqual(2, self.driver._clone.call_count)
        self.driver._boot_cache.return_value.clone_held.assert_called_once()
        self.entry_for.assert_not_called()
        self.driver._resize.assert_called_once()

    @ddt.data(FakeRBD.ImageNotFound, FakeRBD.InvalidArgument)
    def test_entry_gone_is_populated_again_and_cloned(self, error):
        self.held_entry = None
        self.driver._clone.side_effect = [error('gone'), {'a': 1}]
        update = self._clone_entry()
        self.assertEqual({'a': 1, 'provider_location': None}, update)
        self.entry_for.assert_called_once()
        self.driver._resize.assert_called_once()

    def test_no_entry_after_all_raises_the_first_error(self):
        self.held_entry = None
        self.entry_for.return_value = None
        self.driver._clone.side_effect = FakeRBD.InvalidArgument('x')
        with self.assertRaises(FakeRBD.InvalidArgument):
            self._clone_entry()

    def test_entry_removed_again_by_an_older_release_is_tried_again(self):
        # A host of 0.5.0 or earlier removes without the lock: the entry
        # can go again between the locked lookup and the clone.
        self.driver._clone.side_effect = [
            FakeRBD.ImageNotFound('gone'), FakeRBD.InvalidArgument('again'),
            {'a': 1}]
        update = self._clone_entry()
        self.assertEqual({'a': 1, 'provider_location': None}, update)
        self.assertEqual(3, self.driver._clone.call_count)

    def test_gone_at_every_attempt_raises_the_last_error(self):
        errors = [FakeRBD.ImageNotFound('gone %d' % n)
                  for n in range(cloning.CLONE_ATTEMPTS)]
        self.driver._clone.side_effect = errors
        with self.assertRaises(FakeRBD.ImageNotFound) as raised:
            self._clone_entry()
        self.assertIs(errors[-1], raised.exception)
        self.assertEqual(cloning.CLONE_ATTEMPTS,
                         self.driver._clone.call_count)
        self.driver._resize.assert_not_called()

    def test_other_errors_are_not_retried(self):
        self.driver._clone.side_effect = FakeRBD.ImageBusy('busy')
        with self.assertRaises(FakeRBD.ImageBusy):
            self._clone_entry()
        self.entry_for.assert_not_called()
