"""Volumes from the boot cache: the entry a create clones, and the clone.

``entry_for`` looks the image's entry up, or populates it once on a miss
(``BootCache.get_or_populate``); ``clone_entry`` clones the entry's golden
snapshot into the volume.  When an eviction on another host removes the
entry at that moment, it looks the entry up again and clones it under
the image's population lock, which every removal of 0.6.0 and later
takes, so that no such removal runs between that lookup and the clone.
Releases 0.5.0 and earlier remove entries without that lock: against a
host of theirs that evicts while ours clones (a rolling upgrade), the
lookup and clone are tried up to ``CLONE_ATTEMPTS`` times.  Both act for
the driver (``BootCacheRBDDriver``), whose upstream ``_clone`` and
``_resize`` make the clone.
"""

from __future__ import annotations

from typing import Any
from typing import Callable
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

#: How many times a create tries to clone its image's entry when evictions
#: take it away between lookup and clone.  Against removals that hold the
#: image's population lock (0.6.0 and later) the second attempt, which
#: holds it too, always clones; the third is for a host of an earlier
#: release evicting again meanwhile.
CLONE_ATTEMPTS = 3


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
    evicted between lookup and clone is looked up (or populated) again:
    the clone then finds no image or snapshot (ImageNotFound) or, with
    clone format 1, a snapshot the eviction has just unprotected
    (InvalidArgument).  After ``CLONE_ATTEMPTS`` such failures, or when
    no entry can be had, the last error is raised."""
    gone = (driver.rbd.ImageNotFound, driver.rbd.InvalidArgument)

    def clone(found: cache.Entry) -> dict:
        return driver._clone(volume, found.pool, found.name,
                             catalog.SNAPSHOT)

    for attempt in range(1, CLONE_ATTEMPTS + 1):
        try:
            model_update = clone(entry) if attempt == 1 else _clone_again(
                driver, context, volume, image_service, facts, pipeline,
                clone)
        except gone as exc:
            if attempt == CLONE_ATTEMPTS:
                raise
            failure = exc
            LOG.info('Boot-cache entry %(entry)s went away before volume '
                     '%(volume)s was cloned from it; attempt %(next)d of '
                     '%(attempts)d.',
                     {'entry': entry.name, 'volume': volume.id,
                      'next': attempt + 1, 'attempts': CLONE_ATTEMPTS})
            continue
        if model_update is None:
            # No entry can be had (the cache cannot hold the image now).
            raise failure
        break
    model_update['provider_location'] = None
    driver._resize(volume)
    return model_update


def _clone_again(driver: Any, context: Any, volume: Any, image_service: Any,
                 facts: ImageFacts, pipeline: import_pipeline.ImagePipeline,
                 clone: Callable[[cache.Entry], dict]) -> Optional[dict]:
    """Look the entry up and clone it under the image's population lock;
    when it is gone, populate it again (no volume to fill: the clone makes
    it) and clone it; None when no entry can be had.  Raises the clone's
    error."""
    model_update = driver._boot_cache(pipeline).clone_held(facts, clone)
    if model_update is not None:
        return model_update
    entry = entry_for(driver, context, image_service, facts, pipeline,
                      volume=volume)
    return clone(entry) if isinstance(entry, cache.Entry) else None
