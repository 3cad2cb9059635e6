"""Which RBD image names are the boot cache's (pure, no Ceph)."""

import unittest

import ddt

from cinder_rbd_bootcache.bootcache import naming

IMAGE = '9a6084e6-55d7-4991-b1eb-b664b0d03c20'


@ddt.ddt
class WhyNotManageableTest(unittest.TestCase):

    @ddt.data(
        ('bootcache.' + IMAGE, 'ready'),
        ('bootcache.%s.building.c0ffee' % IMAGE, 'building'),
        ('bootcache.%s.kept.10f2a6b8c4d1' % IMAGE, 'kept'),
    )
    @ddt.unpack
    def test_entries_are_refused_with_the_way_out(self, name, state):
        reason = naming.why_not_manageable(name)
        self.assertIn('boot-cache entry (%s)' % state, reason)
        self.assertIn('cinder-rbd-bootcache evict %s' % IMAGE, reason)

    def test_kept_name_parses_back(self):
        name = naming.kept_name(IMAGE, '10f2a6b8c4d1')
        self.assertEqual((IMAGE, naming.KEPT), naming.parse_name(name))
        self.assertNotEqual(naming.entry_name(IMAGE), name)

    @ddt.data('volume-' + IMAGE, 'volume-%s.deleted' % IMAGE,
              naming.COUNTERS_OBJECT, 'my-image', '', None)
    def test_other_names_are_left_to_upstream(self, name):
        self.assertIsNone(naming.why_not_manageable(name))
