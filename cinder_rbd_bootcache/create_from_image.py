"""A volume from an image: the ways the driver's ``clone_image`` tries.

In order, the cheapest that is safe:

1. a Glance rbd location: upstream's clone, behind our pool rules
   (``glance.rbd_store``); the driver passes upstream's ``clone_image``
   in, bound;
2. a cinder:// image-volume (``glance.image_volumes``), cloned by the
   driver's ``create_cloned_volume``;
3. the boot cache (``bootcache.cloning``), populated once on a miss;
4. our own import (``image_import.into_volume``).

Cinder's flow calls ``clone_image`` before it downloads anything, so this
is the one place a download can go straight into Ceph instead of through
``image_conversion_dir``.  Encrypted volumes take only the first way: the
flow makes them with its LUKS conversion (``encryption.from_cache``).
"""

from __future__ import annotations

from typing import Any
from typing import Callable
from typing import Optional

from cinder import exception
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import excutils

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.bootcache import cloning
from cinder_rbd_bootcache.bootcache import population
from cinder_rbd_bootcache import clone_policy
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import image_volumes
from cinder_rbd_bootcache.glance import locations
from cinder_rbd_bootcache.image_import import into_volume
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

#: Upstream's ``clone_image`` bound to the driver: ``(context, volume,
#: image_location, image_meta, image_service) -> (model_update, cloned)``.
UpstreamClone = Callable[[Any, Any, Optional[tuple], dict, Any],
                         tuple[dict, bool]]


def clone_image(driver: Any, upstream: UpstreamClone, context: Any,
                volume: Any, image_location: Optional[tuple],
                image_meta: dict, image_service: Any) -> tuple[dict, bool]:
    """``clone_image``'s answer: the first of the four ways that makes the
    volume, or ``({}, False)`` to leave it to Cinder's flow."""
    try:
        model_update, cloned = upstream(
            context, volume, image_location, image_meta, image_service)
    except (errors.ImageFormatMismatch, errors.ImageUnsafe) as exc:
        # _is_cloneable found that Glance's snapshot is not raw.
        with excutils.save_and_reraise_exception():
            driver._tell_user(context, volume, exc, image_meta.get('id'))
    if cloned:
        return model_update, cloned
    facts = ImageFacts.from_glance(image_meta)
    if volume.encryption_key_id:
        # The flow never asks for encrypted volumes: they need its LUKS
        # conversion.  Our ways say no rather than hand out plain data;
        # the location clone above is upstream's, unchanged.
        return {}, False
    urls = locations.urls_of(image_location)
    if 'cinder' in CONF.allowed_direct_url_schemes:
        model_update = clone_image_volume(driver, context, volume, facts,
                                          urls)
        if model_update is not None:
            return model_update, True
    reason = clone_policy.why_not_import(
        facts, image_cache_in_use=driver._image_cache_in_use(),
        boot_cache_enabled=driver._option('bootcache_enabled'),
        verify_signatures=CONF.verify_glance_signatures)
    if reason:
        LOG.info('Leaving image %(image)s for volume %(volume)s to '
                 'Cinder\'s flow: %(why)s.',
                 {'image': facts.id, 'volume': volume.id, 'why': reason})
        return {}, False
    return from_cache_or_import(driver, context, volume, image_service,
                                facts), True


def clone_image_volume(driver: Any, context: Any, volume: Any,
                       facts: ImageFacts,
                       urls: list[str]) -> Optional[dict]:
    """Clone the image's cinder:// image-volume; None if there is none we
    may use, or its clone failed (then the cache or an import makes the
    volume, as upstream's flow falls back to a download)."""
    source = image_volumes.find(context, volume, facts, urls)
    if source is None:
        return None
    LOG.info('Volume %(volume)s: cloning image-volume %(source)s of '
             'image %(image)s.', {'volume': volume.id,
                                  'source': source.id,
                                  'image': facts.id})
    try:
        return driver.create_cloned_volume(volume, source) or {}
    except exception.CinderException:
        LOG.warning('Volume %(volume)s: could not clone image-volume '
                    '%(source)s of image %(image)s; making it another '
                    'way.', {'volume': volume.id, 'source': source.id,
                             'image': facts.id}, exc_info=True)
        return None


def from_cache_or_import(driver: Any, context: Any, volume: Any,
                         image_service: Any, facts: ImageFacts) -> dict:
    """The volume cloned from the image's boot-cache entry, filled by the
    population that makes the entry, or imported; its model update."""
    pipeline = driver._import_pipeline()

    def make_volume() -> tuple[import_pipeline.Target, dict]:
        # A population fills the volume along with the entry.
        made = driver.create_volume(volume) or {}
        return driver._volume_target(volume), made

    try:
        pipeline.refuse_if_full(driver.configuration.rbd_pool, facts.id)
        found = cloning.entry_for(driver, context, image_service, facts,
                                  pipeline, make_volume, volume)
    except Exception as exc:
        with excutils.save_and_reraise_exception():
            driver._tell_user(context, volume, exc, facts.id)
    if isinstance(found, cache.Entry):
        return cloning.clone_entry(driver, context, volume, image_service,
                                   facts, pipeline, found)
    if isinstance(found, population.VolumeFilled):
        model_update = found.model_update
    else:
        model_update = driver.create_volume(volume) or {}
        into_volume.import_image(driver, context, volume, image_service,
                                 facts, pipeline)
    model_update['provider_location'] = None
    return model_update
