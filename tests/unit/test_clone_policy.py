"""When clone_image imports an image itself, and when it leaves it."""

import unittest

import ddt

from cinder_rbd_bootcache import clone_policy
from cinder_rbd_bootcache.glance.facts import ImageFacts

RAW = {'id': 'i', 'disk_format': 'raw', 'container_format': 'bare'}


@ddt.ddt
class WhyNotImportTest(unittest.TestCase):

    @ddt.data(
        # (image changes, image-volume cache in use, boot cache enabled,
        #  verify_glance_signatures, words of the reason or None)
        ({}, False, True, 'enabled', None),
        ({'disk_format': 'qcow2'}, False, True, 'enabled', None),
        ({'disk_format': 'iso'}, False, True, 'enabled', 'not imported'),
        ({'container_format': 'ova'}, False, False, 'enabled',
         'not imported'),
        ({}, True, False, 'enabled', 'image-volume cache'),
        # Both caches on: the boot cache takes the image.
        ({}, True, True, 'enabled', None),
        ({'properties': {'img_signature': 's'}}, False, True, 'enabled',
         'signature'),
        ({'properties': {'img_signature': 's'}}, False, True, 'disabled',
         None),
    )
    @ddt.unpack
    def test_reason(self, changes, image_cache, boot_cache, signatures,
                    words):
        reason = clone_policy.why_not_import(
            ImageFacts.from_glance(dict(RAW, **changes)), image_cache,
            boot_cache, signatures)
        if words is None:
            self.assertIsNone(reason)
        else:
            self.assertIn(words, reason)


@ddt.ddt
class CloneMethodTest(unittest.TestCase):

    @ddt.data(
        # limit, depth, temporary, source has snapshots, method
        (0, 0, False, False, clone_policy.FULL_COPY),
        (-1, 3, False, False, clone_policy.FULL_COPY),
        (0, 0, True, True, clone_policy.FULL_COPY),
        (1, 0, False, False, clone_policy.CLONE),
        (5, 4, False, True, clone_policy.CLONE),
        (1, 1, False, False, clone_policy.FLATTEN_SOURCE_THEN_CLONE),
        (2, 2, False, False, clone_policy.FLATTEN_SOURCE_THEN_CLONE),
        (2, 3, False, False, clone_policy.FLATTEN_SOURCE_THEN_CLONE),
        # Temporary volumes are never flattened, nor are their sources.
        (1, 1, True, False, clone_policy.CLONE),
        (2, 3, True, True, clone_policy.CLONE),
        # A source with snapshots keeps upstream's row.
        (1, 1, False, True, clone_policy.CLONE_THEN_FLATTEN),
        (2, 5, False, True, clone_policy.CLONE_THEN_FLATTEN),
    )
    @ddt.unpack
    def test_row(self, limit, depth, temporary, has_snapshots, method):
        self.assertEqual(method, clone_policy.clone_method(
            limit, depth, temporary=temporary,
            source_has_snapshots=has_snapshots))
