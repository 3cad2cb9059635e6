"""The errors an image import can end in, and what the user is told.

Each is a Cinder exception, so the create flow handles it like its own
(volume to ``error``, no reschedule for the ``Invalid`` ones), and each
message names the image and says what to do.  ``user_message_detail``
picks the closest of Cinder's fixed user-message details, which are all
``cinder message-list`` can show a user.
"""

from __future__ import annotations

from cinder import exception
from cinder.i18n import _
from cinder.message import message_field


class ImageFormatMismatch(exception.ImageUnacceptable):
    message = _('Image %(image_id)s is unacceptable: its disk_format is '
                '%(declared)s but its content is %(detected)s. Upload it '
                'again with the right disk_format.')


class ImageUnsafe(exception.ImageUnacceptable):
    message = _('Image %(image_id)s is unacceptable: %(reason)s. Such an '
                'image can make the host read files outside the image; '
                'upload a self-contained image (qemu-img convert can make '
                'one).')


class ImageLargerThanVolume(exception.ImageUnacceptable):
    message = _('Image %(image_id)s is unacceptable: its virtual size is '
                '%(virtual_size)d bytes, larger than the %(volume_size)d GiB '
                'volume. Create a larger volume.')


class ImageHashMismatch(exception.ImageUnacceptable):
    message = _('Image %(image_id)s is unacceptable: the %(algo)s of the '
                'data received is %(actual)s, Glance records %(expected)s. '
                'The image data is corrupt or was changed; re-upload the '
                'image.')


class ImageDataCorrupt(ImageHashMismatch):
    """The image service itself found the data does not match its hash
    (python-glanceclient checks os_hash_value at the end of a download)."""
    message = _('Image %(image_id)s is unacceptable: %(reason)s. The image '
                'data is corrupt or was changed; re-upload the image.')


class ImageStreamFailed(exception.ImageDownloadFailed):
    message = _('Failed to download image %(image_href)s, reason: '
                '%(reason)s. Retry; if it fails again, check that Glance can '
                'serve the image (glance image-download).')


class CephPoolFull(exception.VolumeBackendAPIException):
    message = _('Ceph pool %(pool)s is full (%(flags)s): the import of image '
                '%(image_id)s was stopped and its partial RBD image removed. '
                'Free space in the pool or raise its quota, then retry.')


class VolumePoolFull(exception.VolumeBackendAPIException):
    message = _('Ceph pool %(pool)s is full (%(flags)s): volume '
                '%(volume_id)s was not created and nothing of it is left. '
                'Free space in the pool or raise its quota, then retry.')


class ImportStalled(exception.VolumeBackendAPIException):
    message = _('Writing image %(image_id)s to Ceph pool %(pool)s stalled: '
                'an operation took longer than %(timeout)d s '
                '(bootcache_import_stall_timeout). The partial RBD image was '
                'removed. Check the health of the Ceph cluster (ceph -s).')


class ImportWriteFailed(exception.VolumeBackendAPIException):
    message = _('Writing image %(image_id)s to Ceph pool %(pool)s failed: '
                '%(reason)s. The partial RBD image was removed.')


class LuksHeaderFailed(exception.VolumeBackendAPIException):
    message = _('cryptsetup could not write the LUKS header of volume '
                '%(volume)s (cipher %(cipher)s, %(key_bits)d-bit master '
                'key): %(reason)s. Check the cipher and key_size of the '
                'volume type\'s encryption; nothing of the volume is left.')


def user_message_detail(exc: BaseException) -> tuple:
    """The ``message_field.Detail`` closest to ``exc`` for the user."""
    Detail = message_field.Detail
    if isinstance(exc, (exception.ImageTooBig, ImageLargerThanVolume)):
        return Detail.NOT_ENOUGH_SPACE_FOR_IMAGE
    if isinstance(exc, ImageHashMismatch):
        # The only detail about the image's integrity Cinder has.
        return Detail.SIGNATURE_VERIFICATION_FAILED
    if isinstance(exc, exception.ImageUnacceptable):
        return Detail.IMAGE_FORMAT_UNACCEPTABLE
    return Detail.DRIVER_FAILED_CREATE


class CephMisconfigured(exception.VolumeDriverException):
    """A setting of the backend's Ceph access cannot work (see
    ``ceph_preflight``).  The message is one line that names the option,
    its value, what is wrong and what to do.  Not a
    VolumeBackendAPIException: Ceph has answered, so nothing (upstream's
    connection retry included) retries it."""
    message = _('%(option)s = %(value)s: %(problem)s. %(fix)s')


class CephFileUnusable(CephMisconfigured):
    """A file the Ceph client needs (ceph.conf, a keyring) is missing or
    unreadable."""


class CephMonitorsUnreachable(CephMisconfigured):
    """No monitor answered within rados_connect_timeout."""


class CephAuthRefused(CephMisconfigured):
    """The monitors refused the user's key (unknown user, wrong key, or
    no mon caps)."""


class CephPoolMissing(CephMisconfigured):
    """A pool the backend uses does not exist."""


class CephCapsTooNarrow(CephMisconfigured):
    """The user's caps do not allow an operation the driver needs."""
