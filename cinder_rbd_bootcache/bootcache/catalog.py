"""What the boot cache holds, and taking entries out of it.

Shared by the driver (counting, eviction when populating and when stats
are refreshed) and the operator CLI.  Names in a pool:

``bootcache.<IMAGE_ID>``                  a ready entry, snapshot ``golden``
``bootcache.<IMAGE_ID>.building.<COOKIE>`` one being populated
``bootcache.<IMAGE_ID>.kept.<RBD_ID>``    an evicted entry kept for its
                                          clones of clone format 1
``bootcache.lock.<IMAGE_ID>``             its population lock (RADOS object)
``bootcache.evicting``                    the eviction lock (RADOS object)
``bootcache.counters``                    hits, misses, last use (omap)
``bootcache.index``                       which of the above exist (omap,
                                          see :mod:`entry_index`)
trash entry named ``bootcache.<IMAGE_ID>`` evicted while clones remained

Nothing here lists the pool's RBD images, except rebuilding a lost index:
a pool of tens of thousands of volumes costs a create, or a stats
refresh, no more than an empty one.

Removing an entry whose snapshot still has clones: with clone format 2
the children point at the parent by id and need no protection, so the
entry moves to the RBD trash and :meth:`Catalog.sweep_trash` removes it
once its last clone is gone.  Format 1 clones need their parent's
snapshot protected and in place, so the entry is kept: renamed to
``bootcache.<IMAGE_ID>.kept.<RBD_ID>`` (clones find their parent by its
RBD id, not its name) and recorded as kept in the index.  No host looks
up that name, older driver versions included, so the entry is never
cloned again and the next create of the image populates a new entry; and
:meth:`Catalog.sweep_kept` removes it once its last clone is gone.
Both sweeps run at every maintenance (``BootCache.maintain``).
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Any
from typing import Iterator
from typing import Optional

from oslo_log import log as logging

from cinder_rbd_bootcache.bootcache import counters as counters_mod
from cinder_rbd_bootcache.bootcache import index as entry_index
from cinder_rbd_bootcache.bootcache import lock as lock_mod
from cinder_rbd_bootcache.ceph import api as ceph

LOG = logging.getLogger(__name__)

#: Every RBD image and RADOS object of the cache starts with this.
PREFIX = 'bootcache.'
#: The protected snapshot of an entry that volumes are cloned from.
SNAPSHOT = 'golden'
#: Prefix of the RBD image metadata keys an entry records its facts in.
META = 'bootcache.'
#: Between the image id and the builder's cookie in a half-built
#: entry's name: ``bootcache.<IMAGE_ID>.building.<COOKIE>``.
BUILDING_INFIX = '.building.'
COUNTERS_OBJECT = PREFIX + 'counters'
#: Held (a PopulationLock) by whoever applies the limits, on any host.
EVICTION_LOCK = PREFIX + 'evicting'

#: Between the image id and the RBD image id in a kept entry's name.
KEPT_INFIX = '.kept.'

#: States of an entry (``EntryInfo.state``).
READY = 'ready'
BUILDING_STATE = 'building'
IN_TRASH = 'in trash'
#: Evicted, but kept (never cloned again) until its clones are gone.
KEPT = 'kept'

#: What taking a ready entry out of the cache did (``Catalog.remove``):
#: gone, in the RBD trash until its clones are gone, or ``KEPT``.
REMOVED = 'removed'
TRASHED = 'moved to trash'


def entry_name(image_id: str) -> str:
    return PREFIX + image_id


def building_name(image_id: str, cookie: str) -> str:
    """The name of an entry while the holder of ``cookie`` builds it."""
    return entry_name(image_id) + BUILDING_INFIX + cookie


def kept_name(image_id: str, rbd_id: str) -> str:
    """The name of an entry evicted while clones of format 1 remained."""
    return entry_name(image_id) + KEPT_INFIX + rbd_id


def lock_object(image_id: str) -> str:
    return PREFIX + 'lock.' + image_id


def hits_key(image_id: str) -> str:
    return 'hits.' + image_id


def last_used_key(image_id: str) -> str:
    return 'last_used.' + image_id


def _now_ms() -> int:
    # Milliseconds: entries populated within one second still have an order.
    return int(time.time() * 1000)


def parse_name(name: str) -> Optional[tuple[str, str]]:
    """(image id, state) for an RBD image name of the cache, else None."""
    if not name.startswith(PREFIX) or name == COUNTERS_OBJECT:
        return None
    rest = name[len(PREFIX):]
    if BUILDING_INFIX in rest:
        return rest.split(BUILDING_INFIX, 1)[0], BUILDING_STATE
    if KEPT_INFIX in rest:
        return rest.split(KEPT_INFIX, 1)[0], KEPT
    return rest, READY


def why_not_manageable(name: Optional[str]) -> Optional[str]:
    """Why the RBD image ``name`` must not become a Cinder volume, or None.

    Entries (and half-built ones) are the cache's: every clone of their
    Glance image depends on them, and ``manage`` renames the image.
    """
    parsed = parse_name(name or '')
    if parsed is None:
        return None
    image_id, state = parsed
    return ('%s is the boot-cache entry (%s) of Glance image %s, not a '
            'volume: create a volume from that image instead, or evict the '
            'entry with "cinder-rbd-bootcache evict %s"' %
            (name, state, image_id, image_id))


@dataclasses.dataclass
class EntryInfo:
    """One entry as the driver, the eviction policy and the CLI see it."""
    image_id: str
    name: str
    state: str
    size: int = 0
    metadata: dict = dataclasses.field(default_factory=dict)
    children: int = 0
    clone_format_2: bool = False
    hits: int = 0
    last_used: float = 0.0
    trash_id: Optional[str] = None
    #: The RBD image's own id (its id in the trash once moved there).
    rbd_id: str = ''

    @property
    def bytes_used(self) -> int:
        return int(self.metadata.get('bytes_used') or self.size)

    @property
    def created(self) -> float:
        return float(self.metadata.get('created') or 0)

    @property
    def last_activity(self) -> float:
        """Last use, or creation for an entry never used since."""
        return max(self.last_used, self.created)


class _Replaced(Exception):
    """The name of the entry being removed holds a newer entry."""


class PopulationUnderWay(Exception):
    """The entry's image is being populated (its population lock is
    held): the entry was left as it is."""


#: Lease of the population lock a removal holds (renewed while it works):
#: how long a remover that died holds back the image's next population.
REMOVAL_LEASE = 30


class Catalog:
    """The entries of one pool, through an open ``ioctx``."""

    def __init__(self, ioctx: Any, counting: bool = True) -> None:
        self._ioctx = ioctx
        self._counting = counting
        self.counters = counters_mod.Counters(ioctx, COUNTERS_OBJECT)
        self.index = entry_index.EntryIndex(ioctx)

    @property
    def ioctx(self) -> Any:
        return self._ioctx

    # -- counting ---------------------------------------------------------
    def record_hit(self, image_id: str) -> None:
        if not self._counting:
            return
        self.counters.update_batched(
            add={'hits': 1, hits_key(image_id): 1},
            maximum={last_used_key(image_id): _now_ms()})

    def record_miss(self, image_id: str) -> None:
        if not self._counting:
            return
        self.counters.update_batched(
            add={'misses': 1},
            maximum={last_used_key(image_id): _now_ms()})

    # -- listing ----------------------------------------------------------
    def indexed(self) -> entry_index.Contents:
        """What the index records (rebuilt first if it is incomplete):
        no RBD image is opened, whatever the cache or the pool holds."""
        contents = self.index.contents()
        if not contents.complete:
            self.reindex()
            contents = self.index.contents()
        return contents

    def entries(self, include_trash: bool = True) -> list[EntryInfo]:
        """Every entry, ready, building, kept and (optionally) in the
        trash, each described from its RBD image.  A ready record whose
        image is gone is dropped (a record is written only once its image has
        its name); so is a trash record the trash does not hold (the
        next ``sweep_trash`` records what the trash holds again).  A
        half-built record is never dropped here (see below)."""
        contents = self.indexed()
        counts = self.counters.all()
        found = []
        for image_id, record in sorted(contents.ready.items()):
            info = self._describe(entry_name(image_id), image_id, READY)
            if info is None:
                self.index.drop_ready(image_id, if_value=record.encode())
            else:
                found.append(info)
        for name in contents.building:
            parsed = parse_name(name)
            info = parsed and self._describe(name, *parsed)
            if info:
                found.append(info)
            # A record without its image is left as it is: a builder
            # records the name before it creates the image, so only the
            # holder of the image's population lock (``reap_building``,
            # which maintenance runs for records nobody holds) can tell
            # a dead builder's record from a live one's.  Dropping it
            # here would leave a live builder's image unrecorded, never
            # reaped if that builder then dies.  For the same reason an
            # entry a dead builder renamed into place but did not record
            # is adopted there (``_adopt_published``), not here: a ready
            # image of the same id does not say whose record this is.
        found.extend(self._kept(contents))
        if include_trash:
            found.extend(self._trashed(contents))
        for info in found:
            info.hits = counts.get(hits_key(info.image_id), 0)
            info.last_used = counts.get(
                last_used_key(info.image_id), 0) / 1000.0
        return found

    def entries_of(self, image_id: str) -> list[EntryInfo]:
        """The image's entries (ready, building, in the trash), each
        opened; what the index does not name is not opened."""
        contents = self.indexed()
        found = [self.entry(image_id)]
        found += [self._describe(name, image_id, BUILDING_STATE)
                  for name in contents.building
                  if (parse_name(name) or ('',))[0] == image_id]
        found += [info for info in self._kept(contents)
                  if info.image_id == image_id]
        found += [info for info in self._trashed(contents)
                  if info.image_id == image_id]
        return [info for info in found if info is not None]

    def reindex(self) -> entry_index.Contents:
        """Rebuild the index from one listing of the pool and its trash
        (a lost index, a pool from a driver without one, or an operator's
        ``cinder-rbd-bootcache reindex`` after removing entries by hand)."""
        api = ceph.rbd_api()
        ready, building, kept = [], [], {}
        for name in api.list(self._ioctx):
            parsed = parse_name(name)
            if parsed is None:
                continue
            if parsed[1] == BUILDING_STATE:
                building.append(name)
                continue
            if parsed[1] == KEPT:
                kept[name.rsplit(KEPT_INFIX, 1)[1]] = parsed[0]
                continue
            info = self._describe(name, parsed[0], READY)
            if info is not None:
                ready.append(ready_record(info))
        trash = {item['id']: parse_name(item['name'])[0]
                 for item in api.trash_list(self._ioctx)
                 if parse_name(item['name'])}
        self.index.rebuild(ready, building, trash, kept)
        LOG.info('Rebuilt the boot-cache index of the pool: %(ready)d '
                 'entries, %(building)d being built, %(kept)d kept for '
                 'their clones, %(trash)d in the trash.',
                 {'ready': len(ready), 'building': len(building),
                  'kept': len(kept), 'trash': len(trash)})
        return self.index.contents()

    def entry(self, image_id: str) -> Optional[EntryInfo]:
        """The image's ready entry, found by its name: what one create
        reads must not grow with the number of entries or volumes."""
        info = self._describe(entry_name(image_id), image_id, READY)
        if info is not None:
            counts = self.counters.get([hits_key(image_id),
                                        last_used_key(image_id)])
            info.hits = counts[hits_key(image_id)]
            info.last_used = counts[last_used_key(image_id)] / 1000.0
        return info

    def _describe(self, name: str, image_id: str, state: str,
                  trash_id: Optional[str] = None) -> Optional[EntryInfo]:
        with ceph.open_image(self._ioctx, None if trash_id else name,
                             image_id=trash_id, missing_ok=True) as image:
            if image is None:
                return None  # removed while we listed
            info = EntryInfo(image_id, name, state, size=image.size(),
                             trash_id=trash_id, rbd_id=image.id())
            info.metadata = {k[len(META):]: v
                             for k, v in image.metadata_list()
                             if k.startswith(META)}
            if any(s['name'] == SNAPSHOT for s in image.list_snaps()):
                image.set_snap(SNAPSHOT)
                info.children = len(list(image.list_children()))
                image.set_snap(None)
            info.clone_format_2 = bool(
                image.op_features() &
                ceph.rbd.RBD_OPERATION_FEATURE_CLONE_PARENT)
        return info

    def _trashed(self, contents: entry_index.Contents
                 ) -> Iterator[EntryInfo]:
        for trash_id, image_id in sorted(contents.trash.items()):
            try:
                ceph.rbd_api().trash_get(self._ioctx, trash_id)
            except ceph.rbd.ImageNotFound:
                info = None
            else:
                info = self._describe(entry_name(image_id), image_id,
                                      IN_TRASH, trash_id=trash_id)
            if info is None:
                self.index.drop_trash(trash_id)
            else:
                yield info

    def _kept(self, contents: entry_index.Contents) -> Iterator[EntryInfo]:
        for rbd_id, image_id in sorted(contents.kept.items()):
            info = self._describe(kept_name(image_id, rbd_id), image_id,
                                  KEPT)
            if info is None:
                self.index.drop_kept(rbd_id)  # removed meanwhile
            else:
                yield info

    def _adopt_published(self, building: str) -> bool:
        """A half-built image that is gone may have been published by a
        builder that stopped before recording it: record the entry if so
        (publishing renames first, then swaps the index records)."""
        parsed = parse_name(building)
        if parsed is None:
            return False
        info = self._describe(entry_name(parsed[0]), parsed[0], READY)
        if info is None or not info.metadata.get('created'):
            return False
        if self.index.get_ready(parsed[0]) is None:
            self.index.publish(building, ready_record(info))
            LOG.info('Recorded boot-cache entry %s in the index: its '
                     'builder published it but did not record it.',
                     info.name)
        else:
            self.index.drop_building(building)
        return True

    # -- removing ---------------------------------------------------------
    def remove(self, info: EntryInfo, reason: str,
               population_held: bool = False, wait: float = 0) -> str:
        """Take a ready entry out of the cache: ``REMOVED``, ``TRASHED``
        or ``KEPT``.  Whichever, the entry is no longer looked up.

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
            with lock_mod.holding(self._ioctx, lock_object(info.image_id),
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
                outcome = KEPT
            elif info.children:
                self._trash(info, reason)
                outcome = TRASHED
            elif not self._remove_unless_cloned(info, reason):
                self._keep(info, reason, 'a clone of it was made while '
                           'it was being removed')
                outcome = KEPT
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
        self.counters.forget([hits_key(info.image_id),
                              last_used_key(info.image_id)])
        return outcome

    def _keep(self, info: EntryInfo, reason: str, why_kept: str) -> None:
        """Rename a ready entry that cannot go yet out of the way, so that
        nothing looks it up again, and record it as kept; the caller
        holds the image's population lock."""
        name = kept_name(info.image_id, info.rbd_id)
        with ceph.open_image(self._ioctx, info.name) as image:
            self._check_not_replaced(image, info)
            image.metadata_set(META + 'kept_since', '%.3f' % time.time())
            image.metadata_set(META + 'kept_reason', reason)
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

    def sweep_kept(self) -> list[str]:
        """Remove kept entries whose last clone is gone; their image ids.

        Each under its image's population lock, as any removal: one whose
        lock another process holds is left for the next maintenance."""
        removed = []
        for rbd_id, image_id in sorted(self.indexed().kept.items()):
            name = kept_name(image_id, rbd_id)
            try:
                with lock_mod.holding(self._ioctx, lock_object(image_id),
                                      REMOVAL_LEASE,
                                      'removing kept boot-cache entry'):
                    info = self._describe(name, image_id, KEPT)
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
                 if parse_name(item['name'])]
        listed = {item['id']: parse_name(item['name'])[0] for item in items}
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
            info = self._describe(entry_name(image_id), image_id, IN_TRASH,
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
        for name in self.index.building(entry_name(image_id) + BUILDING_INFIX):
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

    def add_half_built(self, name: str) -> None:
        """Record a half-built image before its builder creates it."""
        self.index.add_building(name)

    def remove_half_built(self, name: str) -> None:
        """Remove one half-built image, by its builder (which may have
        renamed it into place already)."""
        if self._remove_image(name) or not self._adopt_published(name):
            self.index.drop_building(name)

    def publish(self, building: str, info: EntryInfo) -> None:
        """Record that ``building`` was renamed into the entry ``info``."""
        self.index.publish(building, ready_record(info))

    def reap_abandoned(self, lease: int) -> list[str]:
        """Half-built images whose population lock nobody holds."""
        reaped = []
        image_ids = sorted({parse_name(name)[0] for name in
                            self.indexed().building if parse_name(name)})
        for image_id in image_ids:
            try:
                with lock_mod.holding(
                        self._ioctx, lock_object(image_id), lease,
                        'reaping abandoned boot-cache population'):
                    reaped += self.reap_building(image_id)
            except lock_mod.HeldByAnother:
                continue  # being populated now: not abandoned
        return reaped

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
                if image.is_protected_snap(SNAPSHOT):
                    # EBUSY while any clone exists.
                    image.unprotect_snap(SNAPSHOT)
            except ceph.rbd.ImageBusy:
                return False
            except ceph.rbd.ImageNotFound:
                pass  # the snapshot is gone already
            try:
                image.remove_snap(SNAPSHOT)
            except ceph.rbd.ImageBusy:
                image.protect_snap(SNAPSHOT)
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
        if info.state == KEPT:
            self.index.drop_kept(info.rbd_id)
            return
        # Only this entry's record: the image may have a new entry already.
        self.index.drop_ready(info.image_id,
                              if_value=ready_record(info).encode())

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


def ready_record(info: EntryInfo) -> entry_index.ReadyRecord:
    """The index's record of a ready entry described from its image."""
    def number(key: str) -> Optional[int]:
        value = info.metadata.get(key)
        return int(value) if value else None
    return entry_index.ReadyRecord(
        info.image_id, bytes_used=info.bytes_used, created=info.created,
        size=number('size'), virtual_size=number('virtual_size'),
        disk_format=info.metadata.get('disk_format', ''),
        populate_seconds=float(info.metadata.get('populate_seconds') or 0))
