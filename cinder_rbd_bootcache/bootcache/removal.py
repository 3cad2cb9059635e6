"""Taking a ready entry out of the boot cache, safely against every
other host.

Removing an entry whose snapshot still has clones: with clone format 2
the children point at the parent by id and need no protection, so the
entry moves to the RBD trash and :meth:`sweeping.Sweeps.sweep_trash` removes it
once its last clone is gone.  Format 1 clones need their parent's
snapshot protected and in place, so the entry is kept: renamed to
``bootcache.<IMAGE_ID>.kept.<RBD_ID>`` (clones find their parent by its
RBD id, not its name) and recorded as kept in the index.  No host looks
up that name, older driver versions included, so the entry is never
cloned again and the next create of the image populates a new entry; and
:meth:`sweeping.Sweeps.sweep_kept` removes it once its last clone is
gone.  Both sweeps run at every maintenance (``BootCache.maintain``).
"""

from __future__ import annotations

import time
from typing import Any
from typing import Optional

from oslo_log import log as logging

from cinder_rbd_bootcache.bootcache import counters as counters_mod
from cinder_rbd_bootcache.bootcache import entry_info
from cinder_rbd_bootcache.bootcache.entry_info import EntryInfo
from cinder_rbd_bootcache.bootcache import index as entry_index
from cinder_rbd_bootcache.bootcache import lock as lock_mod
from cinder_rbd_bootcache.bootcache import naming
from cinder_rbd_bootcache.ceph import api as ceph

LOG = logging.getLogger(__name__)

#: What taking a ready entry out of the cache did (``Removals.remove``):
#: gone, in the RBD trash until its clones are gone, or ``naming.KEPT``.
REMOVED = 'removed'
TRASHED = 'moved to trash'

#: Lease of the population lock a removal holds (renewed while it works):
#: how long a remover that died holds back the image's next population.
REMOVAL_LEASE = 30


class _Replaced(Exception):
    """The name of the entry being removed holds a newer entry."""


class PopulationUnderWay(Exception):
    """The entry's image is being populated (its population lock is
    held): the entry was left as it is."""


class Removals:
    """The removal part of :class:`catalog.Catalog`: taking a ready
    entry out (removed, trashed or kept), and removing an image with its
    snapshots.

    A mixin, so that every caller keeps one object per pool; it uses the
    catalog's ``_ioctx``, ``index``, ``counters``, ``indexed()`` and
    ``_describe()``.
    """

    _ioctx: Any
    index: entry_index.EntryIndex
    counters: counters_mod.Counters

    def indexed(self) -> entry_index.Contents:
        raise NotImplementedError

    def _describe(self, name: str, image_id: str, state: str,
                  trash_id: Optional[str] = None) -> Optional[EntryInfo]:
        raise NotImplementedError

    def remove(self, info: EntryInfo, reason: str,
               population_held: bool = False, wait: float = 0) -> str:
        """Take a ready entry out of the cache: ``REMOVED``, ``TRASHED``
        or ``naming.KEPT``.  Whichever, the entry is no longer looked up.

        Clones of it keep working: it is removed only without children,
        and otherwise moved to the trash (clone format 2) or kept under
        another name (clone format 1) until :meth:`sweep_trash` or
        :meth:`sweep_kept` finds its last clone gone.  A clone made after
        ``info`` was read makes the removal fail on the OSD (the snapshot
        cannot be unprotected or removed); the entry is then kept, or
        trashed, as if the clone had been seen.  An entry another host
        removed meanwhile counts as removed.

        The removal holds the image's population lock (taken here, within
        ``wait`` seconds, unless the caller holds it: ``population_held``),
        so no population publishes a new entry meanwhile.  librbd removes
        and trashes by name, and renames in steps (the new name's id
        object, then the directory, then the old id object): a removal by
        the entry's name while a population renamed its new image to that
        name left the new entry half removed, listed in the pool but not
        openable.  Raises PopulationUnderWay if the lock stays taken.
        """
        if population_held:
            return self._remove_ready(info, reason)
        try:
            with lock_mod.holding(self._ioctx,
                                  naming.lock_object(info.image_id),
                                  REMOVAL_LEASE, 'removing boot-cache entry',
                                  wait=wait):
                return self._remove_ready(info, reason)
        except lock_mod.HeldByAnother:
            raise PopulationUnderWay(
                'image %s is being populated' % info.image_id) from None

    def _remove_ready(self, info: EntryInfo, reason: str) -> str:
        outcome = REMOVED
        try:
            if info.children and not info.clone_format_2:
                self._keep(info, reason, '%d clones of clone format 1 '
                           'need it in place' % info.children)
                outcome = naming.KEPT
            elif info.children:
                self._trash(info, reason)
                outcome = TRASHED
            elif not self._remove_unless_cloned(info, reason):
                self._keep(info, reason, 'a clone of it was made while '
                           'it was being removed')
                outcome = naming.KEPT
        except ceph.rbd.ImageNotFound:
            LOG.info('Boot-cache entry %s was removed by another host.',
                     info.name)
            self._drop_record(info)
        except _Replaced:
            # Its counters are the new entry's now (keyed by image id).
            LOG.info('Boot-cache entry %s was removed by another host and '
                     'populated again meanwhile; the new entry stays.',
                     info.name)
            self._drop_record(info)
            return REMOVED
        self.counters.forget([naming.hits_key(info.image_id),
                              naming.last_used_key(info.image_id),
                              naming.confirmed_key(info.image_id)])
        return outcome

    def _keep(self, info: EntryInfo, reason: str, why_kept: str) -> None:
        """Rename a ready entry that cannot go yet out of the way, so that
        nothing looks it up again, and record it as kept; the caller
        holds the image's population lock."""
        name = naming.kept_name(info.image_id, info.rbd_id)
        with ceph.open_image(self._ioctx, info.name) as image:
            self._check_not_replaced(image, info)
            image.metadata_set(naming.META + 'kept_since',
                               '%.3f' % time.time())
            image.metadata_set(naming.META + 'kept_reason', reason)
        # Recorded first, as for the trash: a kept entry the index does
        # not know would never be swept.  A record whose image did not
        # move is dropped by the next sweep.
        self.index.add_kept(info.image_id, info.rbd_id)
        ceph.rbd_api().rename(self._ioctx, info.name, name)
        self._drop_record(info)
        LOG.warning('Evicted boot-cache entry %(name)s (%(why)s) but kept '
                    'it as %(kept)s: %(kept_why)s. It is no longer cloned '
                    'and goes at the first maintenance after its last '
                    'clone is deleted or flattened; with clone format 2 '
                    '(ceph osd set-require-min-compat-client mimic) it '
                    'would wait in the RBD trash instead.',
                    {'name': info.name, 'why': reason, 'kept': name,
                     'kept_why': why_kept})

    def _trash(self, info: EntryInfo, reason: str,
               removed_when: Optional[str] = None) -> None:
        with ceph.open_image(self._ioctx, info.name) as image:
            self._check_not_replaced(image, info)
        # Recorded first: a trashed entry the index does not know would
        # never be swept.  A record of an entry that did not move is
        # dropped by the next sweep (its id is not in the trash).
        self.index.add_trash(info.image_id, info.rbd_id)
        ceph.rbd_api().trash_move(self._ioctx, info.name, 0)
        self._drop_record(info)
        LOG.info('Moved boot-cache entry %(name)s to the RBD trash '
                 '(%(why)s); it is removed when %(when)s.',
                 {'name': info.name, 'why': reason,
                  'when': removed_when or
                  'its %d clones are gone' % info.children})

    def _remove_unless_cloned(self, info: EntryInfo, reason: str) -> bool:
        """Remove a ready entry that had no clones when it was described;
        False, and the entry intact, if a clone of it appeared since.

        Another host may be removing the same entry (two evictions, or an
        eviction and a population replacing it): a step it did already
        (ImageNotFound for the snapshot or the image) is skipped, and the
        removal goes on, so that the name is free when this returns.
        """
        with ceph.open_image(self._ioctx, info.name,
                             missing_ok=True) as image:
            if image is None:
                self._drop_record(info)
                return True
            self._check_not_replaced(image, info)
            try:
                if image.is_protected_snap(naming.SNAPSHOT):
                    # EBUSY while any clone exists.
                    image.unprotect_snap(naming.SNAPSHOT)
            except ceph.rbd.ImageBusy:
                return False
            except ceph.rbd.ImageNotFound:
                pass  # the snapshot is gone already
            try:
                image.remove_snap(naming.SNAPSHOT)
            except ceph.rbd.ImageBusy:
                image.protect_snap(naming.SNAPSHOT)
                return False
            except ceph.rbd.ImageNotFound:
                pass
        try:
            # False: removed by the other host.
            ceph.remove_image_waiting_out_others(self._ioctx, info.name)
        except (ceph.rbd.ImageHasSnapshots, ceph.rbd.ImageBusy):
            # Clone format 2 clones need no protected parent snapshot: one
            # made after the unprotect keeps the removed snapshot in the
            # trash namespace, and the image cannot go.  The RBD trash
            # holds it until that clone is gone.
            # Or librbd answered busy: a client still has it open.
            self._trash(info, reason, removed_when=(
                'nothing uses it any more (a clone made while it was '
                'being removed, or a client that has it open)'))
            return True
        LOG.info('Removed boot-cache entry %(name)s: %(why)s.',
                 {'name': info.name, 'why': reason})
        self._drop_record(info)
        return True

    def _check_not_replaced(self, image: Any, info: EntryInfo) -> None:
        """Raise _Replaced if the entry's name now holds another RBD image
        than the one ``info`` described: the described entry was removed
        by another host and a population published a new one under the
        name, which must not be touched.  librbd removes and trashes
        images by name, so each removal checks first."""
        if info.rbd_id and image.id() != info.rbd_id:
            raise _Replaced()

    def _drop_record(self, info: EntryInfo) -> None:
        if info.state == naming.KEPT:
            self.index.drop_kept(info.rbd_id)
            return
        # Only this entry's record: the image may have a new entry already.
        self.index.drop_ready(info.image_id,
                              if_value=entry_info.ready_record(info).encode())

    def _remove_image(self, name: Optional[str],
                      image_id: Optional[str] = None) -> bool:
        """Unprotect and remove the golden snapshot, then the image (the
        image itself only when named; trash entries go by trash_remove);
        False if there was no such image."""
        with ceph.open_image(self._ioctx, name, image_id=image_id,
                             missing_ok=True) as image:
            if image is None:
                return False
            for snap in list(image.list_snaps()):
                if image.is_protected_snap(snap['name']):
                    image.unprotect_snap(snap['name'])
                image.remove_snap(snap['name'])
        if name:
            ceph.remove_image_waiting_out_others(self._ioctx, name)
        return True
