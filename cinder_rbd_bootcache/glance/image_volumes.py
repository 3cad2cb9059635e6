"""Glance's cinder store: which image-volume a new volume is cloned from.

With ``'cinder' in allowed_direct_url_schemes``, an image whose location is
``cinder://VOLUME_ID`` lives in a Cinder volume; when that volume is on
this backend, a new volume is a clone of it and nothing is downloaded.
Cinder's flow tries this only after ``clone_image``; the driver asks here
first, so that a cinder:// image never goes through the boot cache.

The rules are upstream's (raw/bare image, unencrypted volume, same backend,
the image owner is the volume's project or the image-volume's
``image_owner`` metadata), plus one: the image-volume must be
``available``, so a volume still being written is never cloned.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

from cinder import objects
from oslo_log import log as logging

from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import locations

LOG = logging.getLogger(__name__)


def may_use(image_owner: Optional[str], project_id: str,
            image_volume_metadata: dict) -> bool:
    """Whether a volume of ``project_id`` may be cloned from this
    image-volume of an image owned by ``image_owner``."""
    if not image_owner:
        return False
    return image_owner in (project_id,
                           image_volume_metadata.get('image_owner'))


def find(context: Any, volume: Any, facts: ImageFacts,
         urls: list[str]) -> Optional[Any]:
    """The image-volume ``volume`` may be cloned from, or None."""
    volume_ids = locations.cinder_volume_ids(urls)
    if not volume_ids or volume.encryption_key_id:
        return None
    if not facts.is_raw or facts.container_format != 'bare':
        LOG.info('Not cloning image-volumes %(ids)s of image %(image)s: '
                 'only raw/bare images can be cloned.',
                 {'ids': volume_ids, 'image': facts.id})
        return None
    filters: dict[str, Any] = {'id': volume_ids}
    if volume.cluster_name:
        filters['cluster_name'] = volume.cluster_name
    else:
        filters['host'] = volume.host
    # The ownership check below is the access control; the lookup itself
    # must see volumes of the image's owner and of the internal tenant.
    candidates = objects.VolumeList.get_all(context.elevated(),
                                            filters=filters)
    for candidate in sorted(candidates,
                            key=lambda v: volume_ids.index(v.id)):
        if candidate.status != 'available':
            LOG.info('Not cloning image-volume %(id)s of image %(image)s: '
                     'it is %(status)s.', {'id': candidate.id,
                                           'image': facts.id,
                                           'status': candidate.status})
        elif not may_use(facts.owner, volume.project_id,
                         candidate.metadata or {}):
            LOG.info('Not cloning image-volume %(id)s of image %(image)s: '
                     'neither the image nor the image-volume belong to '
                     'project %(project)s.', {'id': candidate.id,
                                              'image': facts.id,
                                              'project': volume.project_id})
        else:
            return candidate
    LOG.debug('No usable image-volume on this backend among %(ids)s for '
              'image %(image)s.', {'ids': volume_ids,
                                   'image': facts.id})
    return None
