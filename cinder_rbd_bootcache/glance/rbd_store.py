"""Whether a volume may be a clone of an image's snapshot in Glance's rbd
store.

Upstream's ``RBDDriver._is_cloneable`` accepts a location that is
well-formed, in this cluster (fsid) and of a raw image, and then opens the
snapshot only to see that it can.  ``CloneRules`` asks the same questions
(``locations.why_not_cloneable``), adds the pool rules
(``bootcache_allowed_clone_pools``, never a pool of this backend's
volumes), and reads the snapshot's first blocks in its one open: an image
declared raw whose content is another format is refused as the download
path refuses it, whatever store holds the image.  ``import_source`` asks
the same questions of a qcow2, vmdk, vhd, vhdx or vdi image, whose
snapshot qemu-img then converts instead of a download
(``image_import.pipeline``).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Callable
from typing import ContextManager
from typing import Optional

from oslo_log import log as logging

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.glance import formats
from cinder_rbd_bootcache.glance import locations
from cinder_rbd_bootcache.upstream import compat

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CloneRules:
    """The rules of one backend for cloning Glance's rbd snapshots."""

    #: This cluster's fsid as upstream's ``_get_fsid`` returns it (bytes
    #: or text, by release); called only for a well-formed location.
    fsid: Callable[[], Any]
    #: Pools of this backend's volumes: never a clone source unless
    #: ``allowed_pools`` names them.
    volume_pools: list[str]
    #: ``bootcache_allowed_clone_pools``: when set, the only source pools.
    allowed_pools: list[str]
    #: ``connect(pool)`` (``ceph.connector``) to open the snapshot.
    connect: Callable[[str], ContextManager[tuple]]
    #: The rbd binding (the driver's ``rbd``).
    binding: Any

    def why_not(self, url: str, image_meta: dict) -> Optional[str]:
        """Why the rules (upstream's and ours) refuse this location, or
        None; the snapshot itself is not opened here."""
        try:
            location = locations.parse(url)
        except locations.MalformedLocation as exc:
            return str(exc)
        return locations.why_not_cloneable(
            location, our_fsid=compat.fsid(self.fsid()),
            disk_format=image_meta.get('disk_format'),
            volume_pools=self.volume_pools,
            allowed_pools=self.allowed_pools)

    def is_cloneable(self, url: str, image_meta: dict) -> bool:
        """Whether upstream's clone may use this location.

        Raises ImageFormatMismatch (or ImageUnsafe) when the snapshot of
        an image declared raw holds another format (``snapshot_is_raw``).
        """
        image_id = image_meta.get('id')
        reason = self.why_not(url, image_meta)
        if reason:
            LOG.info('Not cloning image %(image)s from %(url)s: %(why)s.',
                     {'image': image_id, 'url': url, 'why': reason})
            return False
        return self.snapshot_is_raw(locations.parse(url), image_id)

    def snapshot_is_raw(self, location: locations.RBDLocation,
                        image_id: Optional[str]) -> bool:
        """Whether the snapshot of an image declared raw may be cloned.

        Its first ``formats.SNAPSHOT_HEAD_BYTES`` go through the download
        path's inspection (``formats.check_raw_head``), which raises when
        they are not raw content: cloned unread, a qcow2, vmdk, LUKS...
        uploaded as raw would be a volume no guest boots.  False (not
        cloned) if the snapshot cannot be opened or read, as upstream's
        own check; the open is off eventlet's hub (``ceph.open_image``).
        """
        try:
            with self.connect(location.pool) as (_client, ioctx), \
                    ceph.open_image(ioctx, location.image,
                                    snapshot=location.snapshot,
                                    read_only=True,
                                    binding=self.binding) as image:
                head = image.read(0, formats.SNAPSHOT_HEAD_BYTES)
        except self.binding.Error as exc:
            LOG.info('Not cloning image %(image)s from %(url)s: its '
                     'snapshot cannot be read (%(why)s).',
                     {'image': image_id, 'url': location.url, 'why': exc})
            return False
        formats.check_raw_head(head, image_id)
        return True

    def import_source(self, image_location: Optional[tuple],
                      image_meta: dict) -> Optional[locations.RBDLocation]:
        """The rbd:// snapshot qemu-img may convert this non-raw image
        from (``locations.CONVERTED_FORMATS``), or None: the same rules
        as a clone (this cluster, the allowed pools, never a pool of
        this backend's volumes unless allowed), and no part of the
        location that qemu-img's ``rbd:`` syntax gives a meaning
        (``:``, ``/``, ``@``, ``\\``).  The snapshot is not opened here."""
        image_id = image_meta.get('id')
        for url in locations.urls_of(image_location):
            try:
                location = locations.parse(url)
            except locations.MalformedLocation:
                continue
            reason = locations.why_not_cloneable(
                location, our_fsid=compat.fsid(self.fsid()),
                disk_format=image_meta.get('disk_format'),
                volume_pools=self.volume_pools,
                allowed_pools=self.allowed_pools,
                formats=locations.CONVERTED_FORMATS)
            if reason is None and any(
                    char in part for char in ':/@\\'
                    for part in (location.pool, location.image,
                                 location.snapshot)):
                reason = 'a part of it holds one of : / @ \\'
            if reason:
                LOG.info('Not converting image %(image)s from %(url)s: '
                         '%(why)s.', {'image': image_id, 'url': url,
                                      'why': reason})
                continue
            return location
        return None


def clone_source(image_location: Optional[tuple], image_meta: dict,
                 is_cloneable: Callable[[str, dict], bool]) -> Optional[str]:
    """The rbd:// location upstream's ``clone_image`` clones for this
    image, or None when it clones none.

    Upstream tries the locations in ``locations.upstream_order`` and
    clones the first that ``is_cloneable`` (the driver's
    ``_is_cloneable``) accepts; this asks the same questions in the same
    order without cloning.
    """
    for url in locations.upstream_order(image_location):
        if is_cloneable(url, image_meta):
            return url
    return None
