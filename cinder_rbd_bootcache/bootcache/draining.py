"""Emptying a pool's boot cache of every entry no volume depends on.

What ``cinder-rbd-bootcache drain`` does, e.g. before a backend goes back
to upstream's ``RBDDriver`` (which never looks at the entries): remove
each ready entry without clones, each kept or trashed entry whose last
clone is gone, and each half-built image nobody is populating; then say
which entries remain and which RBD images depend on them (the clones of
their snapshot: volumes, or images cloned from volumes).

Nothing here removes anything itself: a ready entry goes through
:meth:`removal.Removals.remove`, under the image's population lock, and
kept, trashed and half-built ones through the sweeps maintenance runs
(:mod:`sweeping`).  So a drain is as safe as an eviction against a
cinder-volume that still runs the driver on the pool: an entry being
populated is left alone and reported, and one cloned while it is being
removed is kept for that clone instead.  Ready entries with clones stay
ready (not evicted): while the driver runs they are still cloned, and if
the backend comes back to the driver they are still cached.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from typing import Optional

from cinder_rbd_bootcache.bootcache import catalog as catalog_mod
from cinder_rbd_bootcache.bootcache import naming
from cinder_rbd_bootcache.ceph import api as ceph

#: Results of a drain, per entry.
REMOVED = 'removed'
REMAINS = 'remains'
WOULD_REMOVE = 'would remove'
WOULD_REMAIN = 'would remain'
#: A half-built image whose population lock is taken: a population is
#: under way (a dry run cannot tell, so says it would remove it unless).
BEING_POPULATED = 'remains: being populated'
WOULD_REMOVE_UNLESS_POPULATED = 'would remove unless being populated'

REASON = 'drained by an operator'

#: Cinder's default ``volume_name_template``.
DEFAULT_VOLUME_NAME_TEMPLATE = 'volume-%s'
#: The suffix upstream's ``RBDDriver`` gives a deleted volume that still
#: has a clone snapshot (the volume's id stays in its name).
DELETED_SUFFIX = '.deleted'


@dataclasses.dataclass(frozen=True)
class Dependent:
    """An RBD image cloned from an entry's snapshot."""
    pool: str
    name: str
    #: The Cinder volume the name says it is, if it says.
    volume_id: Optional[str] = None
    #: In the RBD trash of its pool (e.g. deferred deletion).
    in_trash: bool = False

    def __str__(self) -> str:
        where = '%s/%s' % (self.pool, self.name)
        return where + (' (in the RBD trash)' if self.in_trash else '')


@dataclasses.dataclass
class Drained:
    """One entry: what the drain did or would do, and its dependents."""
    image_id: str
    state: str
    result: str
    dependents: list[Dependent] = dataclasses.field(default_factory=list)

    @property
    def remains(self) -> bool:
        return self.result not in (REMOVED, WOULD_REMOVE,
                                   WOULD_REMOVE_UNLESS_POPULATED)


class VolumeNames:
    """Tells the Cinder volume id from an RBD image name, by Cinder's
    ``volume_name_template``."""

    def __init__(self, template: str = DEFAULT_VOLUME_NAME_TEMPLATE) -> None:
        head, _, tail = template.partition('%s')
        self._pattern = re.compile(
            '^%s([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
            '[0-9a-f]{12})%s(%s)?$' % (re.escape(head), re.escape(tail),
                                       re.escape(DELETED_SUFFIX)))

    def volume_id(self, name: str) -> Optional[str]:
        found = self._pattern.match(name)
        return found.group(1) if found else None


def dependents(ioctx: Any, info: catalog_mod.EntryInfo,
               names: VolumeNames) -> list[Dependent]:
    """The clones of the entry's snapshot, in every pool; none if the
    entry is gone meanwhile."""
    found = []
    with ceph.open_image(ioctx, None if info.trash_id else info.name,
                         image_id=info.trash_id, snapshot=naming.SNAPSHOT,
                         read_only=True, missing_ok=True) as image:
        # None: the image, or its snapshot, is gone.
        for child in [] if image is None else image.list_children2():
            pool = child['pool']
            if child.get('pool_namespace'):
                pool = '%s/%s' % (pool, child['pool_namespace'])
            found.append(Dependent(pool, child['image'],
                                   names.volume_id(child['image']),
                                   bool(child.get('trash'))))
    return sorted(found, key=str)


def plan(found: catalog_mod.Catalog,
         names: VolumeNames) -> list[Drained]:
    """What a drain would do now, changing nothing."""
    rows = []
    for info in found.entries():
        deps = dependents(found.ioctx, info, names)
        if info.state == naming.BUILDING_STATE:
            result = WOULD_REMOVE_UNLESS_POPULATED
        elif deps or info.children:
            result = WOULD_REMAIN
        else:
            result = WOULD_REMOVE
        rows.append(Drained(info.image_id, info.state, result, deps))
    return _sorted(rows)


def drain(found: catalog_mod.Catalog, names: VolumeNames, lease: int,
          wait: float) -> list[Drained]:
    """Remove every entry no RBD image depends on; report every entry
    there was before, and every one there is after.

    ``lease``: of the population locks the sweeps take
    (``bootcache_lock_lease``); ``wait``: seconds a ready entry's
    removal waits for a population of its image under way.
    """
    before = {info.rbd_id: info for info in found.entries()}
    populating = set()
    found.reap_abandoned(lease)
    for info in before.values():
        if info.state != naming.READY or info.children:
            continue
        try:
            found.remove(info, REASON, wait=wait)
        except catalog_mod.PopulationUnderWay:
            populating.add(info.rbd_id)
    found.sweep_kept()
    found.sweep_trash()
    rows = []
    after = {info.rbd_id: info for info in found.entries()}
    for rbd_id, info in before.items():
        if rbd_id not in after:
            rows.append(Drained(info.image_id, info.state, REMOVED))
    for rbd_id, info in after.items():
        populated = (info.state == naming.BUILDING_STATE or
                     rbd_id in populating)
        rows.append(Drained(info.image_id, info.state,
                            BEING_POPULATED if populated else REMAINS,
                            dependents(found.ioctx, info, names)))
    return _sorted(rows)


def _sorted(rows: list[Drained]) -> list[Drained]:
    return sorted(rows, key=lambda r: (r.image_id, r.remains, r.state))
