"""What the boot cache holds, and taking entries out of it.

Shared by the driver (counting, eviction when populating and when stats
are refreshed) and the operator CLI.  Names in a pool:

``bootcache.<IMAGE_ID>``                  a ready entry, snapshot ``golden``
``bootcache.<IMAGE_ID>.building.<COOKIE>`` one being populated
``bootcache.lock.<IMAGE_ID>``             its population lock (RADOS object)
``bootcache.evicting``                    the eviction lock (RADOS object)
``bootcache.counters``                    hits, misses, last use (omap)
trash entry named ``bootcache.<IMAGE_ID>`` evicted while clones remained

Removing an entry whose snapshot still has clones: with clone format 2
the children point at the parent by id and need no protection, so the
entry moves to the RBD trash and :meth:`Catalog.sweep_trash` removes it
once its last clone is gone.  With format 1 clones it stays (the reason is
logged and shown by the CLI).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterator, Optional

from oslo_log import log as logging

from cinder_rbd_bootcache import counters as counters_mod
from cinder_rbd_bootcache import lock as lock_mod
from cinder_rbd_bootcache import rbd_writer

LOG = logging.getLogger(__name__)

PREFIX = 'bootcache.'
SNAPSHOT = 'golden'
META = 'bootcache.'
BUILDING = '.building.'
COUNTERS_OBJECT = PREFIX + 'counters'
#: Held (a PopulationLock) by whoever applies the limits, on any host.
EVICTION_LOCK = PREFIX + 'evicting'

READY = 'ready'
BUILDING_STATE = 'building'
IN_TRASH = 'in trash'


def entry_name(image_id: str) -> str:
    return PREFIX + image_id


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
    if BUILDING in rest:
        return rest.split(BUILDING, 1)[0], BUILDING_STATE
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


class Catalog:
    """The entries of one pool, through an open ``ioctx``."""

    def __init__(self, ioctx: Any, counting: bool = True) -> None:
        self._ioctx = ioctx
        self._counting = counting
        self.counters = counters_mod.Counters(ioctx, COUNTERS_OBJECT)

    @property
    def ioctx(self) -> Any:
        return self._ioctx

    # -- counting ---------------------------------------------------------
    def record_hit(self, image_id: str) -> None:
        if not self._counting:
            return
        self.counters.update(
            add={'hits': 1, hits_key(image_id): 1},
            maximum={last_used_key(image_id): _now_ms()})

    def record_miss(self, image_id: str) -> None:
        if not self._counting:
            return
        self.counters.update(
            add={'misses': 1},
            maximum={last_used_key(image_id): _now_ms()})

    # -- listing ----------------------------------------------------------
    def entries(self, include_trash: bool = True) -> list[EntryInfo]:
        """Every entry, ready, building and (optionally) in the trash."""
        counts = self.counters.all()
        found = []
        for name in rbd_writer.rbd_api().list(self._ioctx):
            parsed = parse_name(name)
            if parsed:
                info = self._describe(name, *parsed)
                if info:
                    found.append(info)
        if include_trash:
            found.extend(self._trashed())
        for info in found:
            info.hits = counts.get(hits_key(info.image_id), 0)
            info.last_used = counts.get(
                last_used_key(info.image_id), 0) / 1000.0
        return found

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
        import rbd
        try:
            image = rbd_writer.open_image(self._ioctx,
                                          None if trash_id else name,
                                          image_id=trash_id)
        except rbd.ImageNotFound:
            return None  # removed while we listed
        try:
            info = EntryInfo(image_id, name, state, size=image.size(),
                             trash_id=trash_id)
            info.metadata = {k[len(META):]: v
                             for k, v in image.metadata_list()
                             if k.startswith(META)}
            if any(s['name'] == SNAPSHOT for s in image.list_snaps()):
                image.set_snap(SNAPSHOT)
                info.children = len(list(image.list_children()))
                image.set_snap(None)
            info.clone_format_2 = bool(
                image.op_features() & rbd.RBD_OPERATION_FEATURE_CLONE_PARENT)
        finally:
            image.close()
        return info

    def _trashed(self) -> Iterator[EntryInfo]:
        for item in rbd_writer.rbd_api().trash_list(self._ioctx):
            parsed = parse_name(item['name'])
            if parsed:
                info = self._describe(item['name'], parsed[0], IN_TRASH,
                                      trash_id=item['id'])
                if info:
                    yield info

    # -- removing ---------------------------------------------------------
    def remove(self, info: EntryInfo, reason: str) -> bool:
        """Take a ready entry out of the cache; False if it must stay.

        Clones of it keep working either way: it is removed only without
        children, and otherwise moved to the trash (clone format 2).
        """
        if info.children and not info.clone_format_2:
            LOG.warning('Keeping boot-cache entry %(name)s (%(why)s): it '
                        'has %(n)d clones of clone format 1, which need '
                        'their parent in place. It goes once they are '
                        'deleted or flattened; with clone format 2 '
                        '(ceph osd set-require-min-compat-client mimic) '
                        'it would move to the RBD trash.',
                        {'name': info.name, 'why': reason,
                         'n': info.children})
            return False
        if info.children:
            rbd_writer.rbd_api().trash_move(self._ioctx, info.name, 0)
            LOG.info('Moved boot-cache entry %(name)s to the RBD trash '
                     '(%(why)s); it is removed when its %(n)d clones are '
                     'gone.', {'name': info.name, 'why': reason,
                               'n': info.children})
        else:
            self._remove_image(info.name)
            LOG.info('Removed boot-cache entry %(name)s: %(why)s.',
                     {'name': info.name, 'why': reason})
        self.counters.forget([hits_key(info.image_id),
                              last_used_key(info.image_id)])
        return True

    def sweep_trash(self) -> list[str]:
        """Remove trashed entries whose last clone is gone."""
        removed = []
        for info in self._trashed():
            if info.children:
                continue
            self._remove_image(None, image_id=info.trash_id)
            rbd_writer.rbd_api().trash_remove(self._ioctx, info.trash_id)
            LOG.info('Removed boot-cache entry %s from the RBD trash: its '
                     'last clone is gone.', info.name)
            removed.append(info.image_id)
        return removed

    def reap_building(self, image_id: str) -> list[str]:
        """Remove half-built images of ``image_id``.  Only for a caller
        that holds the image's population lock: any other builder died
        or lost its lease (and fails its check before renaming)."""
        import rbd
        reaped = []
        for name in rbd_writer.rbd_api().list(self._ioctx):
            if not name.startswith(entry_name(image_id) + BUILDING):
                continue
            try:
                self._remove_image(name)
            except rbd.ImageBusy:
                # A killed builder's watch lives until the OSD times it
                # out (osd_client_watch_timeout, 30 s); the next
                # maintenance pass removes the image.
                LOG.info('%s, left by a boot-cache population that did '
                         'not finish, is still open by its dead builder; '
                         'it is removed by a later stats refresh.', name)
                continue
            LOG.warning('Removed %s, left by a boot-cache population that '
                        'did not finish.', name)
            reaped.append(name)
        return reaped

    def remove_half_built(self, name: str) -> None:
        """Remove one half-built image, by its builder."""
        self._remove_image(name)

    def reap_abandoned(self, lease: int) -> list[str]:
        """Half-built images whose population lock nobody holds."""
        reaped = []
        for info in self.entries(include_trash=False):
            if info.state != BUILDING_STATE:
                continue
            population = lock_mod.PopulationLock(
                self._ioctx, lock_object(info.image_id), lease,
                description='reaping abandoned boot-cache population')
            if population.try_acquire():
                try:
                    reaped += self.reap_building(info.image_id)
                finally:
                    population.release()
        return reaped

    def _remove_image(self, name: Optional[str],
                      image_id: Optional[str] = None) -> None:
        """Unprotect and remove the golden snapshot, then the image (the
        image itself only when named; trash entries go by trash_remove)."""
        import rbd
        try:
            image = rbd_writer.open_image(self._ioctx, name,
                                          image_id=image_id)
        except rbd.ImageNotFound:
            return
        try:
            for snap in list(image.list_snaps()):
                if image.is_protected_snap(snap['name']):
                    image.unprotect_snap(snap['name'])
                image.remove_snap(snap['name'])
        finally:
            image.close()
        if name:
            rbd_writer.rbd_api().remove(self._ioctx, name)
