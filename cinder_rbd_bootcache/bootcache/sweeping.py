"""Clearing what no longer needs to be in the pool, at maintenance.

Kept and trashed entries go once their last clone is gone
(:meth:`Sweeps.sweep_kept`, :meth:`Sweeps.sweep_trash`); half-built
images go once their builder is gone (:meth:`Sweeps.reap_building` by the
next holder of the image's population lock, :meth:`Sweeps.reap_abandoned`
at maintenance for images nobody populates now).
"""

from __future__ import annotations

import datetime

from oslo_log import log as logging

from cinder_rbd_bootcache.bootcache import entry_info
from cinder_rbd_bootcache.bootcache import lock as lock_mod
from cinder_rbd_bootcache.bootcache import naming
from cinder_rbd_bootcache.bootcache import removal
from cinder_rbd_bootcache.ceph import api as ceph

LOG = logging.getLogger(__name__)


class Sweeps(removal.Removals):
    """The sweeping part of :class:`catalog.Catalog` (see
    :class:`removal.Removals` for what it uses of the catalog)."""

    def _adopt_published(self, building: str) -> bool:
        """A half-built image that is gone may have been published by a
        builder that stopped before recording it: record the entry if so
        (publishing renames first, then swaps the index records)."""
        parsed = naming.parse_name(building)
        if parsed is None:
            return False
        info = self._describe(naming.entry_name(parsed[0]), parsed[0],
                              naming.READY)
        if info is None or not info.metadata.get('created'):
            return False
        if self.index.get_ready(parsed[0]) is None:
            self.index.publish(building, entry_info.ready_record(info))
            LOG.info('Recorded boot-cache entry %s in the index: its '
                     'builder published it but did not record it.',
                     info.name)
        else:
            self.index.drop_building(building)
        return True

    def sweep_kept(self) -> list[str]:
        """Remove kept entries whose last clone is gone; their image ids.

        Each under its image's population lock, as any removal: one whose
        lock another process holds is left for the next maintenance."""
        removed = []
        for rbd_id, image_id in sorted(self.indexed().kept.items()):
            name = naming.kept_name(image_id, rbd_id)
            try:
                with lock_mod.holding(self._ioctx,
                                      naming.lock_object(image_id),
                                      removal.REMOVAL_LEASE,
                                      'removing kept boot-cache entry'):
                    info = self._describe(name, image_id, naming.KEPT)
                    if info is None:
                        self.index.drop_kept(rbd_id)
                        continue
                    if info.children or not self._remove_unless_cloned(
                            info, 'its last clone is gone'):
                        continue
            except lock_mod.HeldByAnother:
                continue
            except ceph.rbd.ImageNotFound:
                # Another host's sweep removed it meanwhile.
                self.index.drop_kept(rbd_id)
                continue
            # Its counters went when it was kept: they are a new entry's.
            removed.append(image_id)
        return removed

    def sweep_trash(self) -> list[str]:
        """Remove trashed entries whose last clone is gone.

        The RBD trash itself is listed (it holds what waits for deletion,
        a handful of images, not the pool), and the index's trash records
        are set to match it: librbd's own ``remove`` goes through the
        trash and can leave an image there when it fails half-way (a
        watcher that had the entry open), which no record of ours names.
        """
        recorded = self.indexed().trash
        items = [item for item in ceph.rbd_api().trash_list(self._ioctx)
                 if naming.parse_name(item['name'])]
        listed = {item['id']: naming.parse_name(item['name'])[0]
                  for item in items}
        # librbd's deletion_time is UTC, without a zone.
        now = datetime.datetime.now(datetime.timezone.utc).replace(
            tzinfo=None)
        being_removed = {item['id'] for item in items
                         if ceph.removal_under_way(item, now)}
        for trash_id in set(recorded) - set(listed):
            self.index.drop_trash(trash_id)
        for trash_id in set(listed) - set(recorded):
            self.index.add_trash(listed[trash_id], trash_id)
        removed = []
        for trash_id, image_id in sorted(listed.items()):
            if trash_id in being_removed:
                continue  # its remover finishes it
            info = self._describe(naming.entry_name(image_id), image_id,
                                  naming.IN_TRASH,
                                  trash_id=trash_id)
            if info is None or info.children:
                continue
            self._remove_image(None, image_id=trash_id)
            ceph.trash_remove(self._ioctx, trash_id)
            self.index.drop_trash(trash_id)
            LOG.info('Removed boot-cache entry %s from the RBD trash: its '
                     'last clone is gone.', info.name)
            removed.append(image_id)
        return removed

    def reap_building(self, image_id: str) -> list[str]:
        """Remove half-built images of ``image_id``.  Only for a caller
        that holds the image's population lock: any other builder died
        or lost its lease (and fails its check before renaming)."""
        reaped = []
        prefix = naming.entry_name(image_id) + naming.BUILDING_INFIX
        for name in self.index.building(prefix):
            try:
                existed = self._remove_image(name)
            except ceph.rbd.ImageBusy:
                # A killed builder's watch lives until the OSD times it
                # out (osd_client_watch_timeout, 30 s); the next
                # maintenance pass removes the image.
                LOG.info('%s, left by a boot-cache population that did '
                         'not finish, is still open by its dead builder; '
                         'it is removed by a later stats refresh.', name)
                continue
            if existed:
                LOG.warning('Removed %s, left by a boot-cache population '
                            'that did not finish.', name)
                reaped.append(name)
            elif self._adopt_published(name):
                continue
            self.index.drop_building(name)
        return reaped

    def remove_half_built(self, name: str) -> None:
        """Remove one half-built image, by its builder (which may have
        renamed it into place already)."""
        if self._remove_image(name) or not self._adopt_published(name):
            self.index.drop_building(name)

    def reap_abandoned(self, lease: int) -> list[str]:
        """Half-built images whose population lock nobody holds."""
        reaped = []
        image_ids = sorted({naming.parse_name(name)[0]
                            for name in self.indexed().building
                            if naming.parse_name(name)})
        for image_id in image_ids:
            try:
                with lock_mod.holding(
                        self._ioctx, naming.lock_object(image_id), lease,
                        'reaping abandoned boot-cache population'):
                    reaped += self.reap_building(image_id)
            except lock_mod.HeldByAnother:
                continue  # being populated now: not abandoned
        return reaped
