"""Who hashes an image's data: the pipeline, off eventlet's hub.

The client wrappers here are fakes of Cinder's ``GlanceClientWrapper``
(no Glance runs in unit tests); the functional and e2e suites download
through the test kit's stand-in and a real Glance.
"""

import unittest

from cinder import exception
from cinder.image import image_utils  # noqa: F401
from cinder.image import glance  # noqa: H306,I100
from glanceclient import exc as glance_exc

from cinder_rbd_bootcache.glance import download as image_download


class FakeClientWrapper:
    """Records the calls a GlanceClientWrapper would pass to glanceclient."""

    def __init__(self, result=None, error=None):
        self.calls = []
        self.result = result
        self.error = error

    def call(self, context, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))
        if self.error:
            raise self.error
        return self.result


class OpenStreamTest(unittest.TestCase):

    def test_cinder_glance_service_asked_without_the_client_hash(self):
        chunks = iter([b'data'])
        wrapper = FakeClientWrapper(result=chunks)
        service = glance.GlanceImageService(client=wrapper)
        download = image_download.open_stream('ctx', service, 'img')
        self.assertIs(chunks, download.chunks)
        self.assertTrue(download.hashing)
        self.assertEqual([('data', ('img',), {'do_checksum': False})],
                         wrapper.calls)

    def test_glance_errors_become_cinders_as_download_makes_them(self):
        service = glance.GlanceImageService(client=FakeClientWrapper(
            error=glance_exc.HTTPNotFound('gone')))
        self.assertRaises(exception.ImageNotFound,
                          image_download.open_stream, 'ctx', service, 'img')
        service = glance.GlanceImageService(client=FakeClientWrapper(
            error=glance_exc.HTTPForbidden('no')))
        self.assertRaises(exception.ImageNotAuthorized,
                          image_download.open_stream, 'ctx', service, 'img')

    def test_no_data_is_a_failed_download(self):
        service = glance.GlanceImageService(
            client=FakeClientWrapper(result=None))
        self.assertRaises(exception.ImageDownloadFailed,
                          image_download.open_stream, 'ctx', service, 'img')

    def test_any_other_image_service_is_downloaded_and_hashed(self):
        class OtherImageService:
            def download(self, context, image_id):
                return iter([b'x'])
        download = image_download.open_stream('ctx', OtherImageService(),
                                              'img')
        self.assertEqual([b'x'], list(download.chunks))
        self.assertTrue(download.hashing)

    def test_a_glance_service_without_a_client_is_trusted_as_is(self):
        class Wrapped(glance.GlanceImageService):
            def __init__(self):
                pass  # no _client: a subclass of Cinder's that hides it

            def download(self, context, image_id):
                return iter([b'y'])
        download = image_download.open_stream('ctx', Wrapped(), 'img')
        self.assertEqual([b'y'], list(download.chunks))
        self.assertFalse(download.hashing)


class CinderInternalsTest(unittest.TestCase):
    """What image_download relies on in the installed Cinder release."""

    def test_the_service_keeps_its_client_wrapper(self):
        wrapper = object()
        self.assertIs(wrapper,
                      glance.GlanceImageService(client=wrapper)._client)

    def test_the_wrapper_passes_keyword_arguments_on(self):
        import inspect
        parameters = inspect.signature(
            glance.GlanceClientWrapper.call).parameters
        self.assertIn('kwargs', parameters)

    def test_errors_are_translated_by_the_same_function(self):
        self.assertTrue(callable(glance._reraise_translated_image_exception))
