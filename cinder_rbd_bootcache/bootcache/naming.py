"""The boot cache's naming scheme: every name it gives in a pool.

``bootcache.<IMAGE_ID>``                  a ready entry, snapshot ``golden``
``bootcache.<IMAGE_ID>.building.<COOKIE>`` one being populated
``bootcache.<IMAGE_ID>.kept.<RBD_ID>``    an evicted entry kept for its
                                          clones of clone format 1
``bootcache.lock.<IMAGE_ID>``             its population lock (RADOS object)
``bootcache.evicting``                    the eviction lock (RADOS object)
``bootcache.counters``                    hits, misses, last use, last
                                          confirmed in Glance (omap)
``bootcache.index``                       which of the above exist (omap,
                                          see :mod:`index`)
trash entry named ``bootcache.<IMAGE_ID>`` evicted while clones remained

Every host and every version of the driver sharing a pool reads these
names, so they change only with a migration.
"""

from __future__ import annotations

from typing import Optional

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


def confirmed_key(image_id: str) -> str:
    """When Glance last said the entry's image is still usable (ms)."""
    return 'confirmed.' + image_id


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
