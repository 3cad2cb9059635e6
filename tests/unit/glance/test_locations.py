"""Which Glance rbd:// locations may be cloned: pure rules, no Ceph."""

import types
import unittest

import ddt

from cinder_rbd_bootcache.glance import locations

FSID = '6e7fedfd-ac62-412d-9369-9c059ad0ddbb'
OTHER = '00000000-0000-0000-0000-000000000000'


@ddt.ddt
class ParseTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        ('rbd://%s/images/abc/snap' % FSID, (FSID, 'images', 'abc', 'snap')),
        # Percent-encoded parts are decoded after splitting.
        ('rbd://%s/my%%20pool/a%%2Fb/s%%40p' % FSID,
         (FSID, 'my pool', 'a/b', 's@p')),
    )
    def test_parses(self, url, parts):
        parsed = locations.parse(url)
        self.assertEqual(parts, (parsed.fsid, parsed.pool, parsed.image,
                                 parsed.snapshot))
        self.assertEqual(parsed, locations.parse(parsed.url))

    @ddt.data(
        'cinder://5a0e6a1e-7b1c-4bd5-9e3f-0d6e6b2c1a11',
        'file:///var/lib/glance/images/abc',
        'rbd://%s/images/abc' % FSID,            # no snapshot
        'rbd://%s/images/abc/snap/extra' % FSID,  # too many parts
        'rbd://%s//abc/snap' % FSID,             # empty pool
        'rbd://',
        None,
    )
    def test_malformed(self, url):
        with self.assertRaises(locations.MalformedLocation):
            locations.parse(url)


@ddt.ddt
class WhyNotCloneableTest(unittest.TestCase):

    def _why(self, url, disk_format='raw', allowed=(),
             volume_pools=('volumes',)):
        return locations.why_not_cloneable(
            locations.parse(url), our_fsid=FSID, disk_format=disk_format,
            volume_pools=volume_pools, allowed_pools=allowed)

    @ddt.unpack
    @ddt.data(
        # url, disk_format, allowed pools, expected words in the reason
        ('rbd://%s/images/i/snap' % OTHER, 'raw', (), 'another Ceph cluster'),
        ('rbd://%s/images/i/snap' % FSID, 'qcow2', (), 'only raw'),
        ('rbd://%s/volumes/volume-x/snap' % FSID, 'raw', (),
         "holds this backend's volumes"),
        ('rbd://%s/other/i/snap' % FSID, 'raw', ('images',),
         'not in bootcache_allowed_clone_pools'),
        # An allowed list is the whole truth, even for a volume pool.
        ('rbd://%s/volumes/i/snap' % FSID, 'raw', ('images',),
         'not in bootcache_allowed_clone_pools'),
    )
    def test_refused(self, url, disk_format, allowed, words):
        reason = self._why(url, disk_format, allowed)
        self.assertIsNotNone(reason)
        self.assertIn(words, reason)

    @ddt.unpack
    @ddt.data(
        ('rbd://%s/images/i/snap' % FSID, ()),
        ('rbd://%s/images/i/snap' % FSID, ('images', 'golden')),
        ('rbd://%s/golden/i/snap' % FSID, ('images', 'golden')),
        ('rbd://%s/images/i/snap' % FSID, ('',)),  # empty entries ignored
    )
    def test_allowed(self, url, allowed):
        self.assertIsNone(self._why(url, allowed=allowed))


@ddt.ddt
class UrlsOfTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        (None, []),
        ((None, None), []),
        (('rbd://a/b/c/d', None), ['rbd://a/b/c/d']),
        # direct_url first, duplicates and empty URLs dropped.
        (('rbd://a/b/c/d', [{'url': 'rbd://a/b/c/d'}, {'url': 'cinder://x'},
                            {'url': None}]),
         ['rbd://a/b/c/d', 'cinder://x']),
        ((None, [{'url': 'rbd://1/2/3/4'}]), ['rbd://1/2/3/4']),
    )
    def test_urls(self, image_location, urls):
        self.assertEqual(urls, locations.urls_of(image_location))


VOL = '5a0e6a1e-7b1c-4bd5-9e3f-0d6e6b2c1a11'
VOL2 = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0'


@ddt.ddt
class UpstreamOrderTest(unittest.TestCase):
    """``upstream_order`` (what ``glance_clone_source`` and so ``warm``
    ask about) is the order in which upstream's own
    ``RBDDriver.clone_image`` asks ``_is_cloneable``: it is run here with
    an ``_is_cloneable`` that refuses and records every URL."""

    @ddt.data(
        None,
        (None, None),
        ('rbd://f/p/i/s', None),
        ('rbd://f/p/i/s', []),
        (None, [{'url': 'rbd://f/p/i/s'}, {'url': 'cinder://v'}]),
        ('rbd://f/d/i/s', [{'url': 'rbd://f/p/i/s'}]),
        ('', [{'url': ''}, {'url': 'rbd://f/p/i/s'}]),
    )
    def test_same_as_upstream(self, image_location):
        from cinder.volume.drivers import rbd as upstream_rbd
        asked = []
        driver = types.SimpleNamespace(
            _is_cloneable=lambda url, meta: asked.append(url) and False)
        self.assertEqual(({}, False), upstream_rbd.RBDDriver.clone_image(
            driver, None, None, image_location, {}, None))
        self.assertEqual(asked, locations.upstream_order(image_location))


@ddt.ddt
class CinderVolumeIdsTest(unittest.TestCase):

    @ddt.unpack
    @ddt.data(
        (['cinder://%s' % VOL], [VOL]),
        # Glance with several stores names the store first.
        (['cinder://fast-store/%s' % VOL], [VOL]),
        (['cinder://%s' % VOL.upper()], [VOL]),
        # Order kept, duplicates dropped, other schemes ignored.
        (['rbd://a/b/c/d', 'cinder://%s' % VOL2, 'cinder://%s' % VOL,
          'cinder://store/%s' % VOL2], [VOL2, VOL]),
        # Not a volume id: never reaches the database.
        (['cinder://not-a-uuid', 'cinder://', 'cinder://a/b/%s' % VOL,
          "cinder://%s' OR 1=1" % VOL, 'cinder://%s?x=1' % VOL,
          'file:///%s' % VOL, None, 42], []),
    )
    def test_ids(self, urls, ids):
        self.assertEqual(ids, locations.cinder_volume_ids(urls))


@ddt.ddt
class ConvertedFormatsTest(unittest.TestCase):
    """The same rules for a snapshot qemu-img converts from, which is
    not raw."""

    def _why(self, url, disk_format, allowed=()):
        return locations.why_not_cloneable(
            locations.parse(url), our_fsid=FSID, disk_format=disk_format,
            volume_pools=('volumes',), allowed_pools=allowed,
            formats=locations.CONVERTED_FORMATS)

    @ddt.data('qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi')
    def test_converted_formats_are_accepted(self, disk_format):
        self.assertIsNone(self._why('rbd://%s/images/i/snap' % FSID,
                                    disk_format))

    @ddt.unpack
    @ddt.data(
        ('rbd://%s/images/i/snap' % FSID, 'raw', (), 'only qcow2'),
        ('rbd://%s/images/i/snap' % FSID, 'iso', (), 'only qcow2'),
        ('rbd://%s/images/i/snap' % OTHER, 'qcow2', (),
         'another Ceph cluster'),
        ('rbd://%s/volumes/volume-x/snap' % FSID, 'qcow2', (),
         "holds this backend's volumes"),
        ('rbd://%s/other/i/snap' % FSID, 'qcow2', ('images',),
         'not in bootcache_allowed_clone_pools'),
    )
    def test_refused(self, url, disk_format, allowed, words):
        self.assertIn(words, self._why(url, disk_format, allowed))
