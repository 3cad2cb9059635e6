"""When clone_image imports an image itself, and when it leaves it."""

import unittest

import ddt

from cinder_rbd_bootcache import clone_policy

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
            dict(RAW, **changes), image_cache, boot_cache, signatures)
        if words is None:
            self.assertIsNone(reason)
        else:
            self.assertIn(words, reason)


@ddt.ddt
class CloneMethodTest(unittest.TestCase):

    @ddt.data(
        (0, 0, clone_policy.FULL_COPY),
        (-1, 3, clone_policy.FULL_COPY),
        (1, 0, clone_policy.CLONE),
        (5, 4, clone_policy.CLONE),
        (1, 1, clone_policy.FLATTEN_SOURCE_THEN_CLONE),
        (2, 2, clone_policy.FLATTEN_SOURCE_THEN_CLONE),
        (2, 3, clone_policy.FLATTEN_SOURCE_THEN_CLONE),
    )
    @ddt.unpack
    def test_row(self, limit, depth, method):
        self.assertEqual(method, clone_policy.clone_method(limit, depth))
