"""A clone of a boot-cache entry that an eviction on another host removes
at that moment is retried once with a fresh lookup.

Fakes librbd: the window between an eviction's unprotect and its snapshot
removal is milliseconds wide on a real cluster (the functional race test,
tests/functional/test_cache_scale.py, hits it only by chance).
"""

import unittest
from unittest import mock

import ddt

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache import driver


class FakeRBD:
    class ImageNotFound(Exception):
        pass

    class InvalidArgument(Exception):
        pass

    class ImageBusy(Exception):
        pass


def _driver():
    ours = driver.BootCacheRBDDriver.__new__(driver.BootCacheRBDDriver)
    ours.rbd = FakeRBD
    ours._resize = mock.Mock()
    ours._boot_cache_entry = mock.Mock(
        return_value=cache.Entry('volumes', 'bootcache.img', 'img'))
    return ours


@ddt.ddt
class CloneEntryRetryTest(unittest.TestCase):

    @ddt.data(FakeRBD.ImageNotFound, FakeRBD.InvalidArgument)
    def test_entry_removed_under_the_clone_is_looked_up_again(self, error):
        ours = _driver()
        ours._clone = mock.Mock(side_effect=[error('gone'), {'a': 1}])
        volume = mock.Mock(id='v')
        entry = cache.Entry('volumes', 'bootcache.img', 'img')
        update = ours._clone_entry(None, volume, None, mock.Mock(id='img'),
                                   None, entry)
        self.assertEqual({'a': 1, 'provider_location': None}, update)
        self.assertEqual(2, ours._clone.call_count)
        ours._boot_cache_entry.assert_called_once()

    def test_no_entry_on_the_second_look_raises_the_first_error(self):
        ours = _driver()
        ours._boot_cache_entry.return_value = None
        ours._clone = mock.Mock(side_effect=FakeRBD.InvalidArgument('x'))
        with self.assertRaises(FakeRBD.InvalidArgument):
            ours._clone_entry(None, mock.Mock(id='v'), None,
                              mock.Mock(id='img'), None,
                              cache.Entry('volumes', 'bootcache.img', 'img'))

    def test_other_errors_are_not_retried(self):
        ours = _driver()
        ours._clone = mock.Mock(side_effect=FakeRBD.ImageBusy('busy'))
        with self.assertRaises(FakeRBD.ImageBusy):
            ours._clone_entry(None, mock.Mock(id='v'), None,
                              mock.Mock(id='img'), None,
                              cache.Entry('volumes', 'bootcache.img', 'img'))
        ours._boot_cache_entry.assert_not_called()
