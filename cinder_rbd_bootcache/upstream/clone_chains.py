"""Clone chains of volumes made from volumes: the driver's two changes to
upstream's ``create_cloned_volume`` and ``_delete_volume``.

Both work through upstream RBDDriver's private chain helpers
(``_get_clone_depth``, ``_get_clone_info``, ``_flatten_volume``,
``_delete_clone_parent_refs``) and its ``RADOSClient`` /
``RBDVolumeProxy``, called on the driver and looked up in upstream's
module at each call, so that they behave (and are patched in upstream's
unit tests) exactly as upstream's own calls.

* ``prepare_source`` runs before upstream's ``create_cloned_volume``:
  for the "source at the clone-depth limit" row of
  ``clone_policy.clone_method`` it flattens the source once (and releases
  the source's clone snapshot on its parent), so the new volume and every
  later clone of that source are depth-1 clones.  Upstream would retire
  it by choosing that row itself (flatten the source, not each new clone).
* ``parent_of`` / ``release_parent_snapshot`` wrap upstream's
  ``_delete_volume``: its fast path removes a clone made by
  ``create_cloned_volume`` and leaves the parent's ``<clone>.clone_snap``
  behind, so the parent, once deleted in Cinder, stays in the pool as
  ``volume-*.deleted``.  They run upstream's own chain walk after that
  path when the snapshot is left.  An upstream ``_delete_volume`` that
  releases the parent's clone snapshot on its fast path retires them.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

from cinder.volume.drivers import rbd as upstream_rbd
from oslo_log import log as logging

from cinder_rbd_bootcache import clone_policy

LOG = logging.getLogger(__name__)


def prepare_source(driver: Any, volume: Any, src_vref: Any) -> None:
    """Choose ``clone_policy.clone_method``'s row for cloning
    ``src_vref`` into ``volume`` and, at the limit, flatten the source.

    Upstream's ``create_cloned_volume`` then makes the clone: a source
    flattened here is at depth 0, so upstream clones it without
    flattening the new volume; every other row is upstream's own.
    """
    limit = driver.configuration.rbd_max_clone_depth
    if limit <= 0:
        return
    with upstream_rbd.RADOSClient(driver) as client:
        depth = driver._get_clone_depth(client, src_vref.name)
        temporary = not volume.use_quota
        has_snapshots = (depth >= limit and not temporary and
                         _has_snapshots(driver, client, src_vref.name))
        method = clone_policy.clone_method(
            limit, depth, temporary=temporary,
            source_has_snapshots=has_snapshots)
        LOG.info('Volume %(volume)s from volume %(src)s (clone depth '
                 '%(depth)d, rbd_max_clone_depth %(limit)d, '
                 'temporary %(temporary)s, source has snapshots '
                 '%(snaps)s): %(method)s.',
                 {'volume': volume.id, 'src': src_vref.id,
                  'depth': depth, 'limit': limit,
                  'temporary': temporary, 'snaps': has_snapshots,
                  'method': method})
        if method == clone_policy.FLATTEN_SOURCE_THEN_CLONE:
            _flatten_source(driver, client, src_vref.name)


def _has_snapshots(driver: Any, client: Any, name: str) -> bool:
    with upstream_rbd.RBDVolumeProxy(driver, name, ioctx=client.ioctx,
                                     client=client,
                                     read_only=True) as image:
        return bool(list(image.list_snaps()))


def _flatten_source(driver: Any, client: Any, name: str) -> None:
    with upstream_rbd.RBDVolumeProxy(driver, name, ioctx=client.ioctx,
                                     client=client,
                                     read_only=True) as image:
        _pool, parent, parent_snap = driver._get_clone_info(image, name)
    driver._flatten_volume(name, client)
    if parent:
        # Each clone has its own <clone>.clone_snap on its parent;
        # flattened (and without snapshots of its own, which would keep
        # the link), the source no longer needs it.
        driver._delete_clone_parent_refs(client, parent, parent_snap)


def parent_of(driver: Any, volume: Any,
              client: Any) -> tuple[Optional[str], Optional[str]]:
    """``(parent image, parent snapshot)`` of the volume's RBD image as
    upstream's ``_get_clone_info`` reads them; ``(None, None)`` when it
    is not a clone or not there."""
    try:
        with upstream_rbd.RBDVolumeProxy(driver, volume.name,
                                         ioctx=client.ioctx,
                                         read_only=True) as image:
            _pool, parent, snap = driver._get_clone_info(image, volume.name)
    except driver.rbd.ImageNotFound:
        return None, None
    return parent, snap


def release_parent_snapshot(driver: Any, volume: Any, client: Any,
                            parent: Optional[str],
                            parent_snap: Optional[str]) -> None:
    """After upstream's delete of ``volume``: release the snapshot its
    parent kept for it (``parent_of``, read before the delete), when
    upstream left it.

    Only the per-clone snapshot ``create_cloned_volume`` made is the
    volume's to release; a shared one (Glance's, a boot-cache entry's)
    never is.  And only once the clone is gone: a clone with clones of
    its own is kept as ``<clone>.deleted``, which still depends on the
    snapshot; the delete of its last clone walks up the chain and
    releases it.
    """
    if (parent and parent_snap == '%s.clone_snap' % volume.name and
            not _image_exists(driver, client, volume.name) and
            not _image_exists(driver, client, '%s.deleted' % volume.name) and
            _snapshot_exists(driver, client, parent, parent_snap)):
        LOG.debug('Releasing %(parent)s@%(snap)s left by the delete of '
                  '%(volume)s.', {'parent': parent, 'snap': parent_snap,
                                  'volume': volume.name})
        driver._delete_clone_parent_refs(client, parent, parent_snap)


def _image_exists(driver: Any, client: Any, image_name: str) -> bool:
    try:
        with upstream_rbd.RBDVolumeProxy(driver, image_name,
                                         ioctx=client.ioctx,
                                         read_only=True):
            return True
    except driver.rbd.ImageNotFound:
        return False


def _snapshot_exists(driver: Any, client: Any, image_name: str,
                     snap: str) -> bool:
    try:
        with upstream_rbd.RBDVolumeProxy(driver, image_name,
                                         ioctx=client.ioctx,
                                         read_only=True) as image:
            return any(s['name'] == snap for s in image.list_snaps())
    except driver.rbd.ImageNotFound:
        return False
