"""``warm_image`` before it touches the cache (the population itself is
covered on the sandbox by the functional tests)."""

import unittest
from unittest import mock

from cinder_rbd_bootcache.cli import warm


class NotYetActiveTest(unittest.TestCase):

    def test_an_image_glance_has_not_saved_active_is_not_warmed(self):
        # Glance sends image.activate before it saves the image (its
        # checksum and hashes with it): what the listener then reads.
        images = mock.Mock()
        images.show.return_value = {
            'id': 'img', 'status': 'importing', 'disk_format': 'raw',
            'container_format': 'bare', 'size': 4096, 'checksum': None,
            'os_hash_algo': None, 'os_hash_value': None}
        backend = mock.Mock()
        result = warm.warm_image(backend, images, mock.sentinel.context,
                                 'img')
        self.assertEqual(
            'not cached: the image is importing in Glance, not active',
            result)
        backend.boot_cache.assert_not_called()
        backend.driver.assert_not_called()
