"""What the boot cache holds: the entries of a pool, from its index.

Shared by the driver (counting, eviction when populating and when stats
are refreshed) and the operator CLI.  The names it gives are
:mod:`naming`'s; an entry is described by :mod:`entry_info`; taking
entries out, safely against every other host, is :mod:`removal` and
:mod:`sweeping`.  Their
names are importable from here too, for the CLI and the tests, which
work with a catalog.

Nothing here lists the pool's RBD images, except rebuilding a lost index:
a pool of tens of thousands of volumes costs a create, or a stats
refresh, no more than an empty one.
"""

from __future__ import annotations

import time
from typing import Any
from typing import Iterator
from typing import Optional

from oslo_log import log as logging

from cinder_rbd_bootcache.bootcache import counters as counters_mod
from cinder_rbd_bootcache.bootcache import entry_info
from cinder_rbd_bootcache.bootcache import index as entry_index
from cinder_rbd_bootcache.bootcache import naming
from cinder_rbd_bootcache.bootcache import removal
from cinder_rbd_bootcache.bootcache import sweeping
from cinder_rbd_bootcache.ceph import api as ceph

LOG = logging.getLogger(__name__)

# The vocabulary of the catalog's callers.
BUILDING_INFIX = naming.BUILDING_INFIX
BUILDING_STATE = naming.BUILDING_STATE
COUNTERS_OBJECT = naming.COUNTERS_OBJECT
EVICTION_LOCK = naming.EVICTION_LOCK
IN_TRASH = naming.IN_TRASH
KEPT = naming.KEPT
KEPT_INFIX = naming.KEPT_INFIX
META = naming.META
PREFIX = naming.PREFIX
READY = naming.READY
SNAPSHOT = naming.SNAPSHOT
building_name = naming.building_name
entry_name = naming.entry_name
hits_key = naming.hits_key
kept_name = naming.kept_name
last_used_key = naming.last_used_key
lock_object = naming.lock_object
parse_name = naming.parse_name
why_not_manageable = naming.why_not_manageable
EntryInfo = entry_info.EntryInfo
ready_record = entry_info.ready_record
PopulationUnderWay = removal.PopulationUnderWay
REMOVAL_LEASE = removal.REMOVAL_LEASE
REMOVED = removal.REMOVED
TRASHED = removal.TRASHED


def _now_ms() -> int:
    # Milliseconds: entries populated within one second still have an order.
    return int(time.time() * 1000)


class Catalog(sweeping.Sweeps):
    """The entries of one pool, through an open ``ioctx``: counting,
    listing and describing them, recording a population's steps; taking
    them out is :class:`removal.Removals` and :class:`sweeping.Sweeps`."""

    def __init__(self, ioctx: Any, counting: bool = True) -> None:
        self._ioctx = ioctx
        self._counting = counting
        self.counters = counters_mod.Counters(ioctx, COUNTERS_OBJECT)
        self.index = entry_index.EntryIndex(ioctx)

    @property
    def ioctx(self) -> Any:
        return self._ioctx

    @property
    def counting(self) -> bool:
        """Whether hits and misses are counted: a create's, not a warm's."""
        return self._counting

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
    def summary(self) -> dict[str, int]:
        """Entries, bytes and counters of the cache, for stats and the
        CLI, from the index: no entry is opened."""
        contents = self.indexed()
        counts = self.counters.get(['hits', 'misses'])
        return {
            'entries': len(contents.ready),
            'bytes': sum(r.bytes_used for r in contents.ready.values()),
            'building': len(contents.building),
            'in_trash': len(contents.trash),
            'kept': len(contents.kept),
            'hits': counts['hits'],
            'misses': counts['misses'],
        }

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
        return entry_info.describe(self._ioctx, name, image_id, state,
                                   trash_id)

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

    def add_half_built(self, name: str) -> None:
        """Record a half-built image before its builder creates it."""
        self.index.add_building(name)

    def publish(self, building: str, info: EntryInfo) -> None:
        """Record that ``building`` was renamed into the entry ``info``."""
        self.index.publish(building, ready_record(info))
