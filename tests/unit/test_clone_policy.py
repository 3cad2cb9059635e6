"""When clone_image imports an image itself, and when it leaves it."""

import unittest

import ddt

from cinder_rbd_bootcache import clone_policy

RAW = {'id': 'i', 'disk_format': 'raw', 'container_format': 'bare'}


@ddt.ddt
class WhyNotImportTest(unittest.TestCase):

    @ddt.data(
        # (image changes, location urls, cinder allowed, cache, signatures,
        #  words of the reason or None)
        ({}, [], True, False, 'enabled', None),
        ({'disk_format': 'qcow2'}, [], True, False, 'enabled', None),
        ({'disk_format': 'iso'}, [], True, False, 'enabled',
         'not imported'),
        ({'container_format': 'ova'}, [], True, False, 'enabled',
         'not imported'),
        ({}, ['cinder://v'], True, False, 'enabled', 'cinder://'),
        ({}, ['cinder://v'], False, False, 'enabled', None),
        ({}, ['rbd://f/p/i/s'], True, False, 'enabled', None),
        ({}, [], True, True, 'enabled', 'image-volume cache'),
        ({'properties': {'img_signature': 's'}}, [], True, False, 'enabled',
         'signature'),
        ({'properties': {'img_signature': 's'}}, [], True, False, 'disabled',
         None),
    )
    @ddt.unpack
    def test_reason(self, changes, urls, cinder_allowed, cache, signatures,
                    words):
        reason = clone_policy.why_not_import(
            dict(RAW, **changes), urls, cinder_allowed, cache, signatures)
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
