"""The volume driver Cinder loads: ``BootCacheRBDDriver``.

Deliberately thin: it subclasses upstream's ``RBDDriver`` (cinder 29.0.0)
and delegates every decision to the modules of this package.  Whatever it
does not override behaves exactly as upstream.
"""

from __future__ import annotations

from cinder import interface
from cinder.volume.drivers import rbd as upstream_rbd
from oslo_log import log as logging

from cinder_rbd_bootcache import locations
from cinder_rbd_bootcache import options

LOG = logging.getLogger(__name__)


@interface.volumedriver
class BootCacheRBDDriver(upstream_rbd.RBDDriver):
    """RBD driver with fast, safe creation of volumes from images.

    Version history:

    .. code-block:: none

        0.1.0 - Drop-in subclass of RBDDriver 1.3.0 (cinder 29.0.0);
                refuses to clone image locations outside the allowed pools.
    """

    VERSION = '0.1.0'
    CI_WIKI_NAME = 'cinder-rbd-bootcache'

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(options.BOOTCACHE_OPTS)

    @classmethod
    def get_driver_options(cls) -> list:
        return super().get_driver_options() + options.BOOTCACHE_OPTS

    def _volume_pools(self) -> list[str]:
        return [self.configuration.rbd_pool]

    def _is_cloneable(self, image_location: str, image_meta: dict) -> bool:
        """Upstream's checks plus the pool rules of ``locations``."""
        image_id = image_meta.get('id')
        try:
            location = locations.parse(image_location)
        except locations.MalformedLocation as exc:
            LOG.info('Not cloning image %(image)s from %(url)s: %(why)s.',
                     {'image': image_id, 'url': image_location, 'why': exc})
            return False
        reason = locations.why_not_cloneable(
            location, our_fsid=self._get_fsid(),
            disk_format=image_meta.get('disk_format'),
            volume_pools=self._volume_pools(),
            allowed_pools=self.configuration.bootcache_allowed_clone_pools)
        if reason:
            LOG.info('Not cloning image %(image)s from %(url)s: %(why)s.',
                     {'image': image_id, 'url': image_location, 'why': reason})
            return False
        return super()._is_cloneable(image_location, image_meta)

    def _delete_volume(self, volume, client) -> None:
        """Upstream's delete, plus release of the parent's clone snapshot.

        Upstream (cinder 29) removes a clone made by create_cloned_volume
        on its fast path and returns without removing the parent's
        ``<clone>.clone_snap``; the parent then keeps a snapshot nobody uses
        and, once deleted in Cinder, stays in the pool for ever as
        ``volume-*.deleted``.  Only its slow path walks up the chain.  We
        run that same walk after the fast path, when the snapshot is left.
        """
        parent, parent_snap = self._clone_parent(volume, client)
        super()._delete_volume(volume, client)
        if parent and self._snapshot_exists(client, parent, parent_snap):
            LOG.debug('Releasing %(parent)s@%(snap)s left by the delete of '
                      '%(volume)s.', {'parent': parent, 'snap': parent_snap,
                                      'volume': volume.name})
            self._delete_clone_parent_refs(client, parent, parent_snap)

    def _clone_parent(self, volume, client) -> tuple:
        try:
            with upstream_rbd.RBDVolumeProxy(self, volume.name,
                                             ioctx=client.ioctx,
                                             read_only=True) as image:
                _pool, parent, snap = self._get_clone_info(image, volume.name)
        except self.rbd.ImageNotFound:
            return None, None
        return parent, snap

    def _snapshot_exists(self, client, image_name: str, snap: str) -> bool:
        try:
            with upstream_rbd.RBDVolumeProxy(self, image_name,
                                             ioctx=client.ioctx,
                                             read_only=True) as image:
                return any(s['name'] == snap for s in image.list_snaps())
        except self.rbd.ImageNotFound:
            return False
