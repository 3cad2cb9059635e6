"""The one place the driver changes Cinder's own create_volume flow.

Cinder's flow (26 to 29) never lets a driver make an encrypted volume from
an image without a local copy: ``clone_image``, ``cinder://`` image-volumes
and the image-volume cache are all skipped for a volume with an encryption
key, and ``CreateVolumeFromSpecTask._create_from_image_cache_or_download``
downloads the whole image into ``image_conversion_dir``
(``TemporaryImages.fetch``) before it calls the driver's ``create_volume``
and ``copy_image_to_encrypted_volume``.  For a front-end luks volume this
driver writes the image into the volume's LUKS container from the image's
boot-cache entry (``encryption.writer``), which needs no local copy: that
download would be the whole cost of a cache hit, and one download per
create.

``install`` wraps that one method of the task, once per process, for
volumes whose driver says it makes them from the cache
(``encrypted_volume_from_cache``): the task's own
``_create_from_image_download`` runs (``create_volume``, status
``downloading``, ``volume_utils.copy_image_to_volume`` with its error
handling) without the fetch before it, and on failure the volume's Glance
metadata is dropped as Cinder's method drops it.  Every other volume, and
every volume of another driver in the same process, takes Cinder's method
unchanged.  The method's name and arguments are the same in Cinder 26 to
29 (``tests/unit/upstream/test_flow_hooks.py`` checks the installed
release).

A create flow that lets the driver make an encrypted volume from an
image without the local copy (asking it, as ``clone_image`` is asked for
plain volumes) would retire this module.
"""

from __future__ import annotations

import functools
from typing import Any
from typing import Callable

from cinder import exception
from oslo_log import log as logging
from oslo_utils import excutils

LOG = logging.getLogger(__name__)

#: The driver method that tells whether it makes an encrypted volume from
#: the boot cache: ``(context, volume, image_meta) -> bool``.
ACCEPTS = 'encrypted_volume_from_cache'
#: The driver method called when the task is done with such a volume,
#: made or failed: ``(volume) -> None``.
DONE = 'encrypted_volume_done'


def _task_class() -> Any:
    # The flow's module annotates with Cinder's versioned objects (as in
    # any Cinder service, registered first) and imports cinder.image.glance,
    # which must come after image_utils (the two import each other).
    from cinder import objects
    objects.register_all()
    from cinder.image import image_utils  # noqa: F401
    from cinder.volume.flows.manager import create_volume
    return create_volume.CreateVolumeFromSpecTask


def _accepts(driver: Any, context: Any, volume: Any, image_meta: dict) -> bool:
    accepts = getattr(driver, ACCEPTS, None)
    if accepts is None or not volume.encryption_key_id:
        return False
    try:
        return bool(accepts(context, volume, image_meta))
    except Exception:
        LOG.exception('Could not tell whether encrypted volume %s can be '
                      'made from the boot cache; Cinder\'s flow downloads '
                      'the image.', volume.id)
        return False


def _drop_glance_metadata(task: Any, context: Any, volume: Any) -> None:
    """As Cinder's method after a failure: no Glance metadata stays on
    the volume (there is none yet unless a signature was recorded)."""
    try:
        if task.db.volume_glance_metadata_get(context, volume.id):
            task.db.volume_glance_metadata_delete_by_volume(context,
                                                            volume.id)
    except exception.GlanceMetadataNotFound:
        pass


def _wrap(original: Callable) -> Callable:
    @functools.wraps(original)
    def create_from_image_cache_or_download(
            task: Any, context: Any, volume: Any, image_location: Any,
            image_id: str, image_meta: dict, image_service: Any,
            *args: Any, **kwargs: Any) -> Any:
        if not _accepts(task.driver, context, volume, image_meta):
            return original(task, context, volume, image_location, image_id,
                            image_meta, image_service, *args, **kwargs)
        LOG.info('Encrypted volume %(volume)s: from the boot-cache entry of '
                 'image %(image)s, without a download to '
                 'image_conversion_dir.',
                 {'volume': volume.id, 'image': image_id})
        try:
            return task._create_from_image_download(
                context, volume, image_location, image_meta, image_service)
        except Exception:
            with excutils.save_and_reraise_exception():
                _drop_glance_metadata(task, context, volume)
        finally:
            getattr(task.driver, DONE, lambda _volume: None)(volume)
    create_from_image_cache_or_download.bootcache_wrapped = original
    return create_from_image_cache_or_download


def install() -> None:
    """Wrap the flow's method (once, however many drivers set up)."""
    task = _task_class()
    current = task._create_from_image_cache_or_download
    if getattr(current, 'bootcache_wrapped', None) is not None:
        return
    task._create_from_image_cache_or_download = _wrap(current)
