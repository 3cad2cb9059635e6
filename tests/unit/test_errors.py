"""The user message of every error."""

import inspect
import unittest

from cinder import exception
from cinder.message import message_field
import ddt

from cinder_rbd_bootcache import errors

D = message_field.Detail


#: What ``cinder message-list`` says for each error a create from an image
#: can end in on our paths: (error, the Detail that is true for it, the
#: words the user reads).  Every class of ``errors`` has a row
#: (``test_every_error_class_has_a_row``); so do the Cinder exceptions our
#: paths raise or let through.  A hash that does not match is not a failed
#: signature check (the image need not be signed), and no error here is
#: about a volume type's format, which is all IMAGE_FORMAT_UNACCEPTABLE
#: says.
FAILED = 'Driver failed to create the volume.'
SPACE = 'Image used for creating volume exceeds available space.'
NOT_READY = 'Driver is not initialized at present.'
USER_MESSAGES = [
    (errors.ImageFormatMismatch(image_id='i', declared='raw',
                                detected='qcow2'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImageUnsafe(image_id='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImageLargerThanVolume(image_id='i', virtual_size=2,
                                  volume_size=1),
     'NOT_ENOUGH_SPACE_FOR_IMAGE', SPACE),
    (errors.ImageHashMismatch(image_id='i', algo='a', actual='x',
                              expected='y'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImageDataCorrupt(image_id='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImageCorrupt(image_id='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImageStreamFailed(image_href='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.CephPoolFull(pool='p', image_id='i', flags='full'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.VolumePoolFull(pool='p', volume_id='v', flags='full'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImportStalled(image_id='i', pool='p', timeout=1),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImportWriteFailed(image_id='i', pool='p', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.ImageSourceUnreadable(image_id='i', source='p/i@s',
                                  reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (errors.LuksHeaderFailed(volume='v', cipher='c', key_bits=256,
                             reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (exception.ImageTooBig(image_id='i', reason='r'),
     'NOT_ENOUGH_SPACE_FOR_IMAGE', SPACE),
    (exception.ImageSignatureVerificationException(reason='r'),
     'SIGNATURE_VERIFICATION_FAILED', 'Image signature verification '
     'failed.'),
    (exception.ImageConversionNotAllowed(image_id='i', reason='r'),
     'IMAGE_FORMAT_UNACCEPTABLE', 'The image disk format must be the same '
     'as the volume format for the volume type you are requesting.'),
    (exception.ImageUnacceptable(image_id='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (exception.ImageDownloadFailed(image_href='i', reason='r'),
     'DRIVER_FAILED_CREATE', FAILED),
    (exception.ImageNotFound(image_id='i'), 'DRIVER_FAILED_CREATE', FAILED),
    (exception.ImageNotAuthorized(image_id='i'),
     'DRIVER_FAILED_CREATE', FAILED),
    (exception.KeyManagerError(reason='r'), 'DRIVER_FAILED_CREATE', FAILED),
    (exception.VolumeBackendAPIException(data='d'),
     'DRIVER_FAILED_CREATE', FAILED),
] + [
    # Raised when the driver starts (it stays uninitialised); Cinder
    # refuses the creates of an uninitialised driver with this detail.
    (cls(option='rbd_pool', value='volumez', problem='p', fix='f'),
     'DRIVER_NOT_INITIALIZED', NOT_READY)
    for cls in (errors.CephMisconfigured, errors.CephFileUnusable,
                errors.CephMonitorsUnreachable, errors.CephAuthRefused,
                errors.CephPoolMissing, errors.CephCapsTooNarrow)
] + [
    # Anything else: librados/librbd errors, a bug.
    (OSError(5, 'EIO'), 'DRIVER_FAILED_CREATE', FAILED),
    (RuntimeError('r'), 'DRIVER_FAILED_CREATE', FAILED),
]


def _row_name(row):
    return type(row[0]).__name__


@ddt.ddt
class UserMessageDetailTest(unittest.TestCase):

    @ddt.idata((_row_name(row), row) for row in USER_MESSAGES)
    @ddt.unpack
    def test_detail_is_true_for_the_error(self, _name, row):
        exc, detail_name, words = row
        detail = errors.user_message_detail(exc)
        self.assertIn(detail, D.ALL)
        self.assertEqual(getattr(D, detail_name), detail)
        # What message-list shows; the same in cinder 26 to 29.
        self.assertEqual(words, message_field.translate_detail(detail[0]))

    def test_every_error_class_has_a_row(self):
        classes = {cls for _name, cls in inspect.getmembers(
            errors, inspect.isclass)
            if issubclass(cls, BaseException) and
            cls.__module__ == errors.__name__}
        self.assertTrue(classes)
        with_rows = {type(row[0]) for row in USER_MESSAGES}
        self.assertEqual(set(), classes - with_rows,
                         'errors without a row in USER_MESSAGES')
        # ...and in the module's own table, not just its fallback.
        self.assertEqual(set(), classes - set(errors.USER_MESSAGE_DETAILS))

    def test_no_row_says_something_false(self):
        # The two details that were shown although false: only the one
        # Cinder exception each describes may map to them.
        for exc, detail_name, _words in USER_MESSAGES:
            if detail_name == 'SIGNATURE_VERIFICATION_FAILED':
                self.assertIsInstance(
                    exc, exception.ImageSignatureVerificationException)
            if detail_name == 'IMAGE_FORMAT_UNACCEPTABLE':
                self.assertIsInstance(exc,
                                      exception.ImageConversionNotAllowed)


class ImageLargerThanVolumeTest(unittest.TestCase):

    def test_for_volume_tells_the_volume_in_gib(self):
        error = errors.ImageLargerThanVolume.for_volume(
            'img', 3 * 1024 ** 3 + 1, 3 * 1024 ** 3)
        self.assertIn('virtual size is 3221225473 bytes, larger than the '
                      '3 GiB volume', str(error))
