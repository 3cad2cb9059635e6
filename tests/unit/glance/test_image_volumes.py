"""Who may clone a cinder:// image-volume: upstream's ownership rule."""

import unittest

import ddt

from cinder_rbd_bootcache.glance import image_volumes

MINE, OTHER, SERVICE = 'p-mine', 'p-other', 'p-service'


@ddt.ddt
class MayUseTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        # image owner, image-volume metadata, allowed
        (MINE, {}, True),
        (OTHER, {'image_owner': OTHER}, True),
        (OTHER, {}, False),
        (OTHER, {'image_owner': MINE}, False),
        (OTHER, {'image_owner': SERVICE}, False),
        (None, {}, False),
        (None, {'image_owner': None}, False),
        ('', {'image_owner': ''}, False),
    )
    def test_may_use(self, image_owner, metadata, allowed):
        self.assertEqual(allowed,
                         image_volumes.may_use(image_owner, MINE, metadata))
