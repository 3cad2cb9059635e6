"""Encrypted volumes written from the boot cache, for the driver.

The driver's ``create_volume``, ``copy_image_to_encrypted_volume`` and
flow-hook methods (``encrypted_volume_from_cache``) delegate here.  A luks
volume's container is made straight in Ceph (``LuksWriter``); its data is
the image's boot-cache entry (populated on a miss, from the flow's
download when there is one).  What the driver's
``_why_not_encrypted_from_cache`` names a reason for stays upstream's,
which the driver passes in as a bound method.
"""

from __future__ import annotations

from typing import Any
from typing import Callable

from cinder.image import image_utils
from oslo_log import log as logging
from oslo_utils import excutils

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.bootcache import format_version
from cinder_rbd_bootcache.encryption import volumes as encrypted_volumes
from cinder_rbd_bootcache.glance.facts import ImageFacts

LOG = logging.getLogger(__name__)

#: Upstream's ``create_volume`` bound to the driver: ``(volume) -> Any``.
UpstreamCreate = Callable[[Any], Any]
#: Upstream's ``copy_image_to_encrypted_volume`` bound to the driver:
#: ``(context, volume, image_service, image_id, disable_sparse=...)``.
UpstreamCopy = Callable[..., None]


def create_volume(driver: Any, upstream: UpstreamCreate, volume: Any) -> Any:
    """``upstream``'s create, except for a front-end luks volume: its empty
    LUKS container is made straight in Ceph, and for a volume the flow
    hook makes from the cache, nothing yet (the copy makes it)."""
    if not volume.encryption_key_id:
        return upstream(volume)
    if volume.id in driver._luks_from_cache:
        # copy_image_to_encrypted_volume makes it, data and all.
        return {}
    context = volume.obj_context
    encryption = encrypted_volumes.encryption_of(context, volume)
    if encrypted_volumes.why_not(encryption):
        return upstream(volume)
    driver._luks_writer().create_container(
        volume, encrypted_volumes.luks_key(context, encryption))
    return {}


def copy_image(driver: Any, upstream: UpstreamCopy, context: Any,
               volume: Any, image_service: Any, image_id: str,
               disable_sparse: bool = False) -> None:
    """Write the image's boot-cache entry into the volume's LUKS
    container, or leave the volume to ``upstream``'s conversion."""
    facts = ImageFacts.from_glance(image_service.show(context, image_id))
    encryption = encrypted_volumes.encryption_of(context, volume)
    reason = driver._why_not_encrypted_from_cache(encryption, facts,
                                                  disable_sparse)
    if reason:
        LOG.info('Encrypted volume %(volume)s from image %(image)s: '
                 'upstream\'s conversion (%(why)s).',
                 {'volume': volume.id, 'image': facts.id, 'why': reason})
        return upstream(context, volume, image_service, image_id,
                        disable_sparse=disable_sparse)
    local_path = image_utils.TemporaryImages.for_image_service(
        image_service).get(context, image_id)
    pipeline = driver._import_pipeline()
    writer = driver._luks_writer(pipeline)
    try:
        key = encrypted_volumes.luks_key(context, encryption)
        pipeline.refuse_if_full(driver.configuration.rbd_pool, facts.id)
        entry = driver._boot_cache(pipeline, volume).get_or_populate(
            context, image_service, facts, local_path=local_path)
        writer.write_from_entry(
            entry, volume, key,
            make_container=volume.id in driver._luks_from_cache)
    except (cache.NotCacheable, format_version.FormatNotKnown) as exc:
        LOG.info('Encrypted volume %(volume)s: not caching image '
                 '%(image)s (%(why)s); upstream\'s conversion.',
                 {'volume': volume.id, 'image': facts.id, 'why': exc})
        return upstream(context, volume, image_service, image_id)
    except Exception as exc:
        with excutils.save_and_reraise_exception():
            # The container create_volume made goes too: no LUKS header
            # stays behind (the writer removes what it wrote).
            writer.remove(volume)
            driver._tell_user(context, volume, exc, facts.id)


def accepts(driver: Any, context: Any, volume: Any,
            image_meta: dict) -> bool:
    """Whether ``copy_image`` makes this encrypted volume from the boot
    cache; if so, the driver's ``create_volume`` leaves its container to
    the copy until the flow hook is done with the volume."""
    reason = driver._why_not_encrypted_from_cache(
        encrypted_volumes.encryption_of(context, volume),
        ImageFacts.from_glance(image_meta))
    if reason:
        LOG.info('Encrypted volume %(volume)s: Cinder\'s flow downloads '
                 'image %(image)s (%(why)s).',
                 {'volume': volume.id, 'image': image_meta.get('id'),
                  'why': reason})
        return False
    driver._luks_from_cache.add(volume.id)
    return True
