"""Volumes from the boot cache: the entry a create clones, and the clone.

``entry_for`` looks the image's entry up, or populates it once on a miss
(``BootCache.get_or_populate``); ``clone_entry`` clones the entry's golden
snapshot into the volume.  When an eviction on another host removes the
entry at that moment, it looks the entry up once more and clones it under
the image's population lock, which every removal takes, so that no
removal runs between that lookup and the clone.  Both act for the driver
(``BootCacheRBDDriver``), whose upstream ``_clone`` and ``_resize`` make
the clone.
"""

from __future__ import annotations

from typing import Any
from typing import Optional
from typing import Union

from oslo_log import log as logging

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.bootcache import format_version
from cinder_rbd_bootcache.bootcache import population
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline

LOG = logging.getLogger(__name__)


def entry_for(driver: Any, context: Any, image_service: Any,
              facts: ImageFacts, pipeline: import_pipeline.ImagePipeline,
              make_volume: Optional[population.MakeVolume] = None,
              volume: Any = None
              ) -> Union[cache.Entry, population.VolumeFilled, None]:
    """The entry to clone for ``volume``; or, when this create populated
    the entry, ``VolumeFilled`` (``make_volume`` made the volume and it
    holds the image); None when the cache is off or cannot hold the
    image, or this host bypasses it (its format is newer than this
    release knows: ``format_version``, which logs that once)."""
    if not driver._option('bootcache_enabled'):
        return None
    try:
        return driver._boot_cache(pipeline, volume).get_or_populate(
            context, image_service, facts, make_volume=make_volume)
    except cache.NotCacheable as exc:
        LOG.info('Not caching image %(image)s: %(why)s.',
                 {'image': facts.id, 'why': exc})
        return None
    except format_version.FormatNotKnown:
        LOG.debug('Image %s: the boot cache is bypassed (its format).',
                  facts.id)
        return None


def bypass_reason(driver: Any) -> Optional[str]:
    """Why the driver's boot cache, although enabled, is not used: its
    pool's format is newer than this release knows; else None."""
    if not driver._option('bootcache_enabled'):
        return None
    return driver._boot_cache().bypass_reason()


def clone_entry(driver: Any, context: Any, volume: Any, image_service: Any,
                facts: ImageFacts, pipeline: import_pipeline.ImagePipeline,
                entry: cache.Entry) -> dict:
    """Clone the entry's golden snapshot, resized to the volume.  An entry
    evicted between lookup and clone is looked up (or populated) once
    more: the clone then finds no image or snapshot (ImageNotFound) or,
    with clone format 1, a snapshot the eviction has just unprotected
    (InvalidArgument)."""
    try:
        model_update = driver._clone(volume, entry.pool, entry.name,
                                     catalog.SNAPSHOT)
    except (driver.rbd.ImageNotFound, driver.rbd.InvalidArgument):
        LOG.info('Boot-cache entry %(entry)s went away before volume '
                 '%(volume)s was cloned from it; trying once more.',
                 {'entry': entry.name, 'volume': volume.id})

        def clone(found: cache.Entry) -> dict:
            return driver._clone(volume, found.pool, found.name,
                                 catalog.SNAPSHOT)

        model_update = driver._boot_cache(pipeline).clone_held(facts, clone)
        if model_update is None:
            # Removed: populated again (no volume to fill: the clone
            # makes it), then cloned.
            entry = entry_for(driver, context, image_service, facts,
                              pipeline, volume=volume)
            if not isinstance(entry, cache.Entry):
                raise
            model_update = clone(entry)
    model_update['provider_location'] = None
    driver._resize(volume)
    return model_update
