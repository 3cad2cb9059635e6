"""What Glance says of an image, and which answers retire its entry
(Glance's client is a mock: the answers a real Glance gives are its
documented statuses and a 404; tests/functional/test_retirement.py asks
the harness's stand-in)."""

import unittest
from unittest import mock

import ddt
from glanceclient import exc as glance_exc

from cinder_rbd_bootcache.glance import image_state


@ddt.ddt
class ImageStateTest(unittest.TestCase):

    @ddt.data(('active', None),
              ('queued', None),
              ('saving', None),
              ('importing', None),
              ('uploading', None),
              ('deactivated', image_state.DEACTIVATED),
              ('deleted', image_state.DELETED),
              ('pending_delete', image_state.DELETED),
              ('killed', image_state.DELETED),
              (None, None))
    @ddt.unpack
    def test_why_retire(self, status, expected):
        self.assertEqual(expected, image_state.why_retire(status))

    @ddt.data((True, {'privileged_user': True}), (False, {}))
    @ddt.unpack
    def test_asks_as_the_service_user_where_cinder_can(self, can, kwargs):
        service = mock.Mock()
        service._client.call.return_value = {'status': 'deactivated'}
        with mock.patch.object(image_state.compat,
                               'glance_service_auth_module',
                               return_value=object() if can else None):
            self.assertEqual(image_state.DEACTIVATED,
                             image_state.ask(service, 'ctx', 'img'))
        service._client.call.assert_called_once_with(
            'ctx', 'get', 'img', **kwargs)

    def test_an_image_glance_no_longer_has_was_deleted(self):
        service = mock.Mock()
        service._client.call.side_effect = glance_exc.HTTPNotFound()
        self.assertEqual(image_state.DELETED,
                         image_state.ask(service, 'ctx', 'img'))

    def test_any_other_error_is_raised(self):
        service = mock.Mock()
        service._client.call.side_effect = glance_exc.HTTPForbidden()
        self.assertRaises(glance_exc.HTTPForbidden, image_state.ask,
                          service, 'ctx', 'img')
