"""The errors an image import can end in, and what the user is told.

Each is a Cinder exception, so the create flow handles it like its own
(volume to ``error``, no reschedule for the ``Invalid`` ones), and each
message names the image and says what to do.  ``user_message_detail``
picks, from Cinder's fixed user-message details (all ``cinder
message-list`` can show a user), the one that is true for the error
(``USER_MESSAGE_DETAILS``).
"""

from __future__ import annotations

from typing import Any
from typing import Optional

from cinder import exception
from cinder.i18n import _
from cinder.message import api as message_api
from cinder.message import message_field
from oslo_log import log as logging
from oslo_utils import units

LOG = logging.getLogger(__name__)


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

    @classmethod
    def for_volume(cls, image_id: str, virtual_size: int,
                   volume_bytes: int) -> 'ImageLargerThanVolume':
        """The error for an image of ``virtual_size`` bytes that does not
        fit a volume of ``volume_bytes`` bytes (told in whole GiB, as
        Cinder sizes volumes)."""
        return cls(image_id=image_id, virtual_size=virtual_size,
                   volume_size=volume_bytes // units.Gi)


class ImageHashMismatch(exception.ImageUnacceptable):
    message = _('Image %(image_id)s is unacceptable: the %(algo)s of the '
                'data received is %(actual)s, Glance records %(expected)s. '
                'The image data is corrupt or was changed; re-upload the '
                'image.')


class ImageDataCorrupt(ImageHashMismatch):
    """The image service's client found the data does not match its hash
    (python-glanceclient does, at the end of a download, when it is asked
    through an image service's ``download`` that leaves the check to it;
    see ``glance.download``)."""
    message = _('Image %(image_id)s is unacceptable: %(reason)s. The image '
                'data is corrupt or was changed; re-upload the image.')


class ImageCorrupt(exception.ImageUnacceptable):
    """qemu-img check finds the image's own metadata inconsistent (or
    cannot finish checking it): converted, it would become a volume with
    wrong data and no error."""
    message = _('Image %(image_id)s is corrupt: %(reason)s. A volume made '
                'from it would hold wrong data; its owner must upload it '
                'again (qemu-img check shows the damage).')


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


class ImageSourceUnreadable(exception.VolumeBackendAPIException):
    message = _('Reading image %(image_id)s from Ceph (%(source)s) failed: '
                '%(reason)s. Nothing was written; check that rbd_user may '
                'read that pool.')


class LuksHeaderFailed(exception.VolumeBackendAPIException):
    message = _('cryptsetup could not write the LUKS header of volume '
                '%(volume)s (cipher %(cipher)s, %(key_bits)d-bit master '
                'key): %(reason)s. Check the cipher and key_size of the '
                'volume type\'s encryption; nothing of the volume is left.')


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


#: The ``cinder message-list`` detail of each error a create from an image
#: can end in on our paths: ours above, and the Cinder exceptions those
#: paths raise or let through.  Each detail is one that is true for the
#: error; Cinder's details are a fixed list, so most errors get the generic
#: "Driver failed to create the volume." and the precise reason goes to
#: cinder-volume's log (the driver logs it where it creates the message).
#: Not "The image disk format must be the same as the volume format...":
#: that is about volume types whose format differs from the image's,
#: which no error here is.  Not "Image signature verification failed." for
#: a hash that does not match: the image need not be signed at all.
#: Looked up along the exception's class hierarchy, most derived first;
#: anything not found gets ``DRIVER_FAILED_CREATE``.
USER_MESSAGE_DETAILS: dict[type, tuple] = {
    ImageFormatMismatch: message_field.Detail.DRIVER_FAILED_CREATE,
    ImageUnsafe: message_field.Detail.DRIVER_FAILED_CREATE,
    # The image's virtual size exceeds the volume: "Image used for
    # creating volume exceeds available space." is true.
    ImageLargerThanVolume: message_field.Detail.NOT_ENOUGH_SPACE_FOR_IMAGE,
    ImageHashMismatch: message_field.Detail.DRIVER_FAILED_CREATE,
    ImageDataCorrupt: message_field.Detail.DRIVER_FAILED_CREATE,
    ImageCorrupt: message_field.Detail.DRIVER_FAILED_CREATE,
    ImageStreamFailed: message_field.Detail.DRIVER_FAILED_CREATE,
    CephPoolFull: message_field.Detail.DRIVER_FAILED_CREATE,
    VolumePoolFull: message_field.Detail.DRIVER_FAILED_CREATE,
    ImportStalled: message_field.Detail.DRIVER_FAILED_CREATE,
    ImportWriteFailed: message_field.Detail.DRIVER_FAILED_CREATE,
    ImageSourceUnreadable: message_field.Detail.DRIVER_FAILED_CREATE,
    LuksHeaderFailed: message_field.Detail.DRIVER_FAILED_CREATE,
    # Cinder's own: image_conversion_dir too small (as Cinder's flow says).
    exception.ImageTooBig: message_field.Detail.NOT_ENOUGH_SPACE_FOR_IMAGE,
    # A signed image whose signature does not verify (Cinder's check).
    exception.ImageSignatureVerificationException:
        message_field.Detail.SIGNATURE_VERIFICATION_FAILED,
    # image_conversion_disable and an image whose format is not the
    # volume's: the one case that detail describes.
    exception.ImageConversionNotAllowed:
        message_field.Detail.IMAGE_FORMAT_UNACCEPTABLE,
    exception.ImageUnacceptable: message_field.Detail.DRIVER_FAILED_CREATE,
    exception.ImageDownloadFailed: message_field.Detail.DRIVER_FAILED_CREATE,
    exception.ImageNotFound: message_field.Detail.DRIVER_FAILED_CREATE,
    exception.ImageNotAuthorized: message_field.Detail.DRIVER_FAILED_CREATE,
    exception.KeyManagerError: message_field.Detail.DRIVER_FAILED_CREATE,
    exception.VolumeBackendAPIException:
        message_field.Detail.DRIVER_FAILED_CREATE,
    # Raised when the driver starts, so that it stays uninitialised: the
    # creates Cinder then refuses say "Driver is not initialized at present."
    CephMisconfigured: message_field.Detail.DRIVER_NOT_INITIALIZED,
    CephFileUnusable: message_field.Detail.DRIVER_NOT_INITIALIZED,
    CephMonitorsUnreachable: message_field.Detail.DRIVER_NOT_INITIALIZED,
    CephAuthRefused: message_field.Detail.DRIVER_NOT_INITIALIZED,
    CephPoolMissing: message_field.Detail.DRIVER_NOT_INITIALIZED,
    CephCapsTooNarrow: message_field.Detail.DRIVER_NOT_INITIALIZED,
}


def user_message_detail(exc: BaseException) -> tuple:
    """The ``message_field.Detail`` that is true for ``exc``."""
    for cls in type(exc).__mro__:
        if cls in USER_MESSAGE_DETAILS:
            return USER_MESSAGE_DETAILS[cls]
    return message_field.Detail.DRIVER_FAILED_CREATE


def tell_user(context: Any, volume: Any, exc: Exception,
              image_id: Optional[str]) -> None:
    """Tell the user (``cinder message-list``) why the volume failed, in
    the words of the one Cinder message detail that is true for ``exc``
    (``user_message_detail``), and log the precise reason, which no such
    detail holds, with the volume and image."""
    detail = user_message_detail(exc)
    LOG.error('Volume %(volume)s from image %(image)s failed: '
              '%(error)s: %(reason)s  The user is told: "%(told)s"',
              {'volume': volume.id, 'image': image_id,
               'error': type(exc).__name__, 'reason': exc,
               'told': detail[1]})
    message_api.API().create(
        context, message_field.Action.COPY_IMAGE_TO_VOLUME,
        resource_uuid=volume.id, detail=detail)
