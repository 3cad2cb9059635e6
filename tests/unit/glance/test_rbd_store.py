"""``rbd_store``'s rules before the snapshot is opened: pure, no Ceph.

The snapshot's read (``CloneRules.snapshot_is_raw``) is exercised on the
real cluster by tests/functional/test_create_from_image.py.
"""

import unittest

import ddt

from cinder_rbd_bootcache.glance import rbd_store

FSID = '6e7fedfd-ac62-412d-9369-9c059ad0ddbb'
OTHER = '00000000-0000-0000-0000-000000000000'


def _rules(asked: list, fsid: object = FSID) -> rbd_store.CloneRules:
    def read_fsid():
        asked.append('fsid')
        return fsid
    return rbd_store.CloneRules(
        fsid=read_fsid, volume_pools=['volumes'], allowed_pools=[],
        connect=None, binding=None)


@ddt.ddt
class WhyNotTest(unittest.TestCase):

    def test_malformed_location_asks_no_fsid(self):
        asked = []
        reason = _rules(asked).why_not('rbd://%s/images/abc' % FSID,
                                       {'disk_format': 'raw'})
        self.assertIsNotNone(reason)
        self.assertEqual([], asked)

    @ddt.unpack
    @ddt.data(
        # fsid as text or, from some bindings, bytes: the same cluster.
        (FSID, 'images', 'raw', None),
        (FSID.encode(), 'images', 'raw', None),
        (OTHER, 'images', 'raw', 'another Ceph cluster'),
        (FSID, 'images', 'qcow2', 'only raw images'),
        (FSID, 'volumes', 'raw', 'holds this backend'),
    )
    def test_rules(self, fsid, pool, disk_format, why):
        asked = []
        reason = _rules(asked, fsid).why_not(
            'rbd://%s/%s/abc/snap' % (FSID, pool),
            {'disk_format': disk_format})
        self.assertEqual(['fsid'], asked)
        if why is None:
            self.assertIsNone(reason)
        else:
            self.assertIn(why, reason)

    def test_refused_location_is_not_opened(self):
        # connect=None: an open would raise TypeError.
        self.assertFalse(_rules([]).is_cloneable(
            'rbd://%s/images/abc/snap' % OTHER,
            {'id': 'i', 'disk_format': 'raw'}))


class CloneSourceTest(unittest.TestCase):

    def test_first_accepted_in_upstream_order(self):
        asked = []

        def is_cloneable(url, meta):
            asked.append(url)
            return url.endswith('/b/s')
        image_location = ('rbd://f/p/a/s',
                          [{'url': 'rbd://f/p/a/s', 'metadata': {}},
                           {'url': 'rbd://f/p/b/s', 'metadata': {}},
                           {'url': 'rbd://f/p/c/s', 'metadata': {}}])
        self.assertEqual('rbd://f/p/b/s', rbd_store.clone_source(
            image_location, {}, is_cloneable))
        self.assertEqual(['rbd://f/p/a/s', 'rbd://f/p/b/s'], asked)

    def test_none_when_none_accepted(self):
        self.assertIsNone(rbd_store.clone_source(
            ('rbd://f/p/a/s', []), {}, lambda url, meta: False))


@ddt.ddt
class ImportSourceTest(unittest.TestCase):
    """Which location of a non-raw image qemu-img converts from; the
    snapshot itself is read on the real cluster by
    tests/functional/test_import_pipeline.py."""

    def _source(self, urls, disk_format='qcow2'):
        return _rules([]).import_source(
            (None, [{'url': url, 'metadata': {}} for url in urls]),
            {'id': 'i', 'disk_format': disk_format})

    def test_first_acceptable_location(self):
        found = self._source([
            'file:///var/lib/glance/images/i',
            'rbd://%s/images/i' % FSID,             # malformed
            'rbd://%s/images/i/snap' % OTHER,       # another cluster
            'rbd://%s/images/i/snap' % FSID,
            'rbd://%s/images2/i/snap' % FSID])
        self.assertEqual(('images', 'i', 'snap'),
                         (found.pool, found.image, found.snapshot))

    def test_direct_url_counts_too(self):
        found = _rules([]).import_source(
            ('rbd://%s/images/i/snap' % FSID, []),
            {'id': 'i', 'disk_format': 'vmdk'})
        self.assertEqual('images', found.pool)

    @ddt.data(
        'rbd://%s/volumes/i/snap' % FSID,
        # Parts qemu-img's rbd: syntax would read as more than a name.
        'rbd://%s/images/a%%3Ab/snap' % FSID,
        'rbd://%s/images/a%%40b/snap' % FSID,
        'rbd://%s/images/a%%2Fb/snap' % FSID,
        'rbd://%s/images/i/s%%5Cp' % FSID,
    )
    def test_refused(self, url):
        self.assertIsNone(self._source([url]))

    def test_raw_is_cloned_not_converted(self):
        self.assertIsNone(self._source(['rbd://%s/images/i/snap' % FSID],
                                       disk_format='raw'))

    def test_no_locations(self):
        self.assertIsNone(_rules([]).import_source(None, {'id': 'i'}))
