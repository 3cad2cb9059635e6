"""The pure parts of a drain: which names are Cinder volumes', what
counts as remaining.  A drain on a real pool is
tests/functional/test_way_back.py's."""

import unittest

import ddt

from cinder_rbd_bootcache.bootcache import draining

VOLUME_ID = '2f0b9c1e-8d5a-4a7e-9b53-0c8f1d2e3a4b'


@ddt.ddt
class VolumeNamesTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        ('volume-%s', 'volume-' + VOLUME_ID, VOLUME_ID),
        # Upstream renames a deleted volume that still has clones.
        ('volume-%s', 'volume-%s.deleted' % VOLUME_ID, VOLUME_ID),
        ('vol_%s_x', 'vol_%s_x' % VOLUME_ID, VOLUME_ID),
        ('volume-%s', 'bootcache.' + VOLUME_ID, None),
        ('volume-%s', 'volume-%s.clone_snap' % VOLUME_ID, None),
        ('volume-%s', 'volume-not-a-uuid', None),
    )
    def test_volume_id(self, template, name, volume_id):
        self.assertEqual(volume_id,
                         draining.VolumeNames(template).volume_id(name))


class DrainedTest(unittest.TestCase):

    def test_what_remains(self):
        self.assertEqual(
            [False, True, False, True, False, True],
            [draining.Drained('i', 'ready', result).remains for result in (
                draining.REMOVED, draining.REMAINS, draining.WOULD_REMOVE,
                draining.WOULD_REMAIN,
                draining.WOULD_REMOVE_UNLESS_POPULATED,
                draining.BEING_POPULATED)])
