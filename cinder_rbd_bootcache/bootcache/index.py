"""Which boot-cache entries a pool holds, without listing the pool.

A production pool holds tens of thousands of volumes; listing every RBD
image of it to find the cache's entries would make each stats refresh,
and each population, cost with the pool instead of with the cache.  So
the entries are also recorded in the omap of one RADOS object,
``bootcache.index``, next to them:

``ready.<IMAGE_ID>``       a published entry; its value is JSON with what
                           eviction and ``list`` need (bytes used,
                           created, sizes, format), no image opened
``building.<RBD NAME>``    a half-built image (``bootcache.<ID>.building.
                           <COOKIE>``), recorded before it is created
``trash.<RBD IMAGE ID>``   an entry moved to the RBD trash; value: the
                           Glance image id
``kept.<RBD IMAGE ID>``    an evicted entry kept for its clones of clone
                           format 1, renamed ``bootcache.<ID>.kept.<RBD
                           IMAGE ID>``; value: the Glance image id
``complete``               the index covers every entry of the pool
``format``                 the format of everything the cache keeps in
                           the pool (see :mod:`format_version`)

Each change of an entry and its record is ordered so that the index is
never missing an entry that exists: a half-built image is recorded before
it is created, its record is dropped after it is removed; publishing swaps
``building.*`` for ``ready.*`` in one write op.  A record can outlive its
image (a crash between the two steps, an operator's ``rbd rm``); readers
that open the image find that out and drop the record.

An index without ``complete`` (lost, or a pool populated by a driver
version without it) is rebuilt from one listing of the pool by the next
reader; ``cinder-rbd-bootcache reindex`` does the same on request.
A driver version that does not know a kind of record ignores it when it
reads the index (and drops it when it rebuilds the index; the next
rebuild by a version that knows it records it again).
"""

from __future__ import annotations

import dataclasses
import errno
import json
from typing import Any
from typing import Iterable
from typing import Optional

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.ceph import omap
from cinder_rbd_bootcache.upstream import compat

OBJECT = 'bootcache.index'
READY = 'ready.'
BUILDING = 'building.'
TRASH = 'trash.'
KEPT = 'kept.'
COMPLETE = 'complete'
#: Not a record: the pool's format (``format_version``), kept by rebuilds.
FORMAT = 'format'


@dataclasses.dataclass(frozen=True)
class ReadyRecord:
    """A published entry as the index records it."""
    image_id: str
    bytes_used: int = 0
    created: float = 0.0
    size: Optional[int] = None
    virtual_size: Optional[int] = None
    disk_format: str = ''
    populate_seconds: float = 0.0

    def encode(self) -> bytes:
        fields = dataclasses.asdict(self)
        del fields['image_id']
        return json.dumps(fields, sort_keys=True).encode()

    @classmethod
    def decode(cls, image_id: str, value: bytes) -> 'ReadyRecord':
        try:
            fields = json.loads(value or b'{}')
        except ValueError:
            fields = {}
        known = {f.name for f in dataclasses.fields(cls)} - {'image_id'}
        return cls(image_id, **{k: v for k, v in fields.items()
                                if k in known})


@dataclasses.dataclass
class Contents:
    """Everything the index records."""
    ready: dict[str, ReadyRecord] = dataclasses.field(default_factory=dict)
    building: list[str] = dataclasses.field(default_factory=list)
    trash: dict[str, str] = dataclasses.field(default_factory=dict)
    #: RBD image id -> Glance image id of entries kept for their clones.
    kept: dict[str, str] = dataclasses.field(default_factory=dict)
    complete: bool = False


class EntryIndex:
    """The index of the pool open as ``ioctx``."""

    def __init__(self, ioctx: Any) -> None:
        # Calls that wait on the OSD run off eventlet's hub.
        self._ioctx = compat.tpool_wrap(ioctx)

    # -- reading ------------------------------------------------------------
    def contents(self) -> Contents:
        """Every record, read in pages; O(entries), whatever the pool."""
        found = Contents()
        for key, value in omap.items(self._ioctx, OBJECT):
            if key.startswith(READY):
                image_id = key[len(READY):]
                found.ready[image_id] = ReadyRecord.decode(image_id, value)
            elif key.startswith(BUILDING):
                found.building.append(key[len(BUILDING):])
            elif key.startswith(TRASH):
                found.trash[key[len(TRASH):]] = value.decode()
            elif key.startswith(KEPT):
                found.kept[key[len(KEPT):]] = value.decode()
            elif key == COMPLETE:
                found.complete = True
        return found

    def get_ready(self, image_id: str) -> Optional[ReadyRecord]:
        """One entry's record, read by its key."""
        with ceph.rados.ReadOpCtx() as op:
            found, _ret = self._ioctx.get_omap_vals_by_keys(
                op, (READY + image_id,))
            try:
                self._ioctx.operate_read_op(op, OBJECT)
            except ceph.rados.ObjectNotFound:
                return None
            values = dict(found)
        value = values.get(READY + image_id)
        return None if value is None else ReadyRecord.decode(image_id, value)

    def building(self, prefix: str) -> list[str]:
        """Half-built image names starting with ``prefix`` (one image's)."""
        return [key[len(BUILDING):] for key, _value in
                omap.items(self._ioctx, OBJECT, BUILDING + prefix)]

    # -- recording ----------------------------------------------------------
    def add_building(self, name: str) -> None:
        self._write(set_keys={BUILDING + name: b''})

    def publish(self, name: str, record: ReadyRecord) -> None:
        """The half-built ``name`` became the entry of ``record``."""
        self._write(set_keys={READY + record.image_id: record.encode()},
                    remove_keys=[BUILDING + name])

    def drop_building(self, name: str) -> None:
        self._write(remove_keys=[BUILDING + name])

    def drop_ready(self, image_id: str, if_value: Optional[bytes] = None
                   ) -> None:
        """Drop the entry's record; with ``if_value``, only if the record
        is still that one (not one a new population just published)."""
        self._write(remove_keys=[READY + image_id],
                    compare={READY + image_id: if_value}
                    if if_value is not None else None)

    def add_trash(self, image_id: str, trash_id: str) -> None:
        self._write(set_keys={TRASH + trash_id: image_id.encode()})

    def drop_trash(self, trash_id: str) -> None:
        self._write(remove_keys=[TRASH + trash_id])

    def add_kept(self, image_id: str, rbd_id: str) -> None:
        self._write(set_keys={KEPT + rbd_id: image_id.encode()})

    def drop_kept(self, rbd_id: str) -> None:
        self._write(remove_keys=[KEPT + rbd_id])

    def rebuild(self, ready: Iterable[ReadyRecord], building: Iterable[str],
                trash: dict[str, str],
                kept: Optional[dict[str, str]] = None) -> None:
        """Record what a listing of the pool found, drop every ready,
        trash and kept record the listing did not find, and mark the index
        complete.  A ``ready`` record a population wrote meanwhile may be
        dropped; it comes back with the entry's next use or rebuild.
        ``building`` records are only added: a builder records its name
        before it creates the image, so a record without an image may be
        a live builder's, and dropping it would leave that image
        unrecorded, never reaped if the builder then dies.  Records whose
        builder is gone are dropped by the holder of the image's
        population lock (``Catalog.reap_building``)."""
        wanted = {READY + r.image_id: r.encode() for r in ready}
        wanted.update({BUILDING + name: b'' for name in building})
        wanted.update({TRASH + trash_id: image_id.encode()
                       for trash_id, image_id in trash.items()})
        wanted.update({KEPT + rbd_id: image_id.encode()
                       for rbd_id, image_id in (kept or {}).items()})
        stale = [key for key, _value in omap.items(self._ioctx, OBJECT)
                 if key not in wanted and key not in (COMPLETE, FORMAT)
                 and not key.startswith(BUILDING)]
        keys = list(wanted)
        for start in range(0, len(keys), omap.PAGE):
            page = keys[start:start + omap.PAGE]
            self._write(set_keys={k: wanted[k] for k in page})
        for start in range(0, len(stale), omap.PAGE):
            self._write(remove_keys=stale[start:start + omap.PAGE])
        self._write(set_keys={COMPLETE: b'1'})

    def _write(self, set_keys: Optional[dict[str, bytes]] = None,
               remove_keys: Iterable[str] = (),
               compare: Optional[dict[str, bytes]] = None) -> bool:
        """One write op; False when a ``compare`` value no longer held."""
        remove_keys = tuple(remove_keys)
        with ceph.rados.WriteOpCtx() as op:
            # Creates the object if needed; then every change applies at
            # once or not at all.
            op.new(ceph.rados.LIBRADOS_CREATE_IDEMPOTENT)
            for key, value in (compare or {}).items():
                # The binding takes text; every value here is ASCII.
                op.omap_cmp(key, value.decode(),
                            ceph.rados.LIBRADOS_CMPXATTR_OP_EQ)
            if set_keys:
                self._ioctx.set_omap(op, tuple(set_keys),
                                     tuple(set_keys.values()))
            if remove_keys:
                self._ioctx.remove_omap_keys(op, remove_keys)
            try:
                self._ioctx.operate_write_op(op, OBJECT)
            except ceph.rados.OSError as exc:
                if compare and exc.errno == errno.ECANCELED:
                    return False
                raise
        return True
