"""The boot cache: one flat, verified "golden" RBD image per Glance image.

An entry is the RBD image ``bootcache.<IMAGE_ID>`` in the backend's pool
with one protected snapshot, ``golden``, that every volume made from the
image is a depth-1 clone of.  It needs no internal tenant and no Glance
location: the first create of an image populates the entry through the
import pipeline, every later one is a clone.

Population is single-flight across every process and host sharing the
pool (``lock.PopulationLock``), and an entry appears only complete: it is
built under ``bootcache.<IMAGE_ID>.building.<COOKIE>``, verified by the
pipeline (size, Glance's hash), snapshotted, protected, then renamed into
place.  A half-built image never has the entry's name, so it is never
cloned; one whose builder died is removed by the next holder of the
image's lock, or by the maintenance pass (:meth:`BootCache.maintain`).

What an entry records in its own RBD metadata (``bootcache.*`` keys) is
fixed when it is built: the Glance image's id, hashes, sizes and format,
the bytes it uses, when it was built and how long that took.  What changes
(hits, misses, last use) is counted exactly in ``catalog.COUNTERS_OBJECT``.
An entry whose hash no longer matches Glance's is not used and is replaced.
Names, listing and removal live in :mod:`catalog`; which entries go, in
:mod:`eviction`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterable, Optional

from oslo_log import log as logging

from cinder_rbd_bootcache import catalog as catalog_mod
from cinder_rbd_bootcache import eviction
from cinder_rbd_bootcache import import_pipeline
from cinder_rbd_bootcache import integrity
from cinder_rbd_bootcache import lock as lock_mod
from cinder_rbd_bootcache import rbd_writer

LOG = logging.getLogger(__name__)

PREFIX = catalog_mod.PREFIX
SNAPSHOT = catalog_mod.SNAPSHOT
META = catalog_mod.META
entry_name = catalog_mod.entry_name


class NotCacheable(Exception):
    """The image cannot have an entry (its virtual size is unknown)."""


@dataclasses.dataclass(frozen=True)
class Entry:
    pool: str
    name: str
    image_id: str


def _fingerprint(image_meta: dict) -> str:
    """What an entry must match: Glance's multihash, else its md5."""
    return (image_meta.get('os_hash_value') or image_meta.get('checksum')
            or '')


def _entry_size(image_meta: dict) -> int:
    if image_meta['disk_format'] == 'raw' and image_meta.get('size'):
        return image_meta['size']
    if image_meta.get('virtual_size'):
        return image_meta['virtual_size']
    raise NotCacheable('image %s has no virtual_size in Glance'
                       % image_meta['id'])


class BootCache:
    """Entries of one pool; ``connect`` as in ``import_pipeline``."""

    def __init__(self, connect: import_pipeline.Connect,
                 pipeline: Optional[import_pipeline.ImagePipeline],
                 pool: str, lease: int, wait_timeout: int,
                 limits: eviction.Limits = eviction.Limits()) -> None:
        self._connect = connect
        self._pipeline = pipeline
        self.pool = pool
        self._lease = lease
        self._wait_timeout = wait_timeout
        self.limits = limits

    def lookup(self, image_meta: dict) -> Optional[Entry]:
        """The ready entry for this image, or None."""
        with self._connect(self.pool) as (_client, ioctx):
            return self._lookup(ioctx, image_meta)

    def _lookup(self, ioctx: Any, image_meta: dict) -> Optional[Entry]:
        import rbd
        name = entry_name(image_meta['id'])
        try:
            image = rbd_writer.open_image(ioctx, name)
        except rbd.ImageNotFound:
            return None
        try:
            recorded = image.metadata_get(META + 'fingerprint')
            ready = any(s['name'] == SNAPSHOT for s in image.list_snaps())
        except (KeyError, rbd.ImageNotFound):  # no such metadata key
            return None
        finally:
            image.close()
        if not ready:
            return None
        if recorded != _fingerprint(image_meta):
            LOG.warning('Boot-cache entry %(name)s no longer matches image '
                        '%(image)s in Glance; not using it.',
                        {'name': name, 'image': image_meta['id']})
            return None
        return Entry(self.pool, name, image_meta['id'])

    def get_or_populate(self, context: Any, image_service: Any,
                        image_meta: dict, count: bool = True) -> Entry:
        """The entry, populated once if missing, whoever else asks.

        Counts a hit when the entry was there (or another request built
        it), a miss when this call built it; ``count=False`` (the CLI's
        ``warm``, which makes no volume) counts neither.
        """
        image_id = image_meta['id']
        with self._connect(self.pool) as (_client, ioctx):
            catalog = catalog_mod.Catalog(ioctx, counting=count)
            entry = self._lookup(ioctx, image_meta)
            if entry:
                catalog.record_hit(image_id)
                return entry
            size = _entry_size(image_meta)
            population = lock_mod.PopulationLock(
                ioctx, catalog_mod.lock_object(image_id), self._lease,
                description='populating boot-cache entry')
            finished = lock_mod.acquire_or_wait(
                population.try_acquire,
                lambda: self._lookup(ioctx, image_meta) is not None,
                timeout=self._wait_timeout)
            if finished:
                LOG.info('Boot-cache entry for image %s was populated by '
                         'another request.', image_id)
                catalog.record_hit(image_id)
                return self._lookup(ioctx, image_meta)
            try:
                # It may have become ready between the two checks.
                entry = self._lookup(ioctx, image_meta)
                if entry:
                    catalog.record_hit(image_id)
                    return entry
                entry = self._build(context, image_service, image_meta,
                                    ioctx, catalog, size, population)
                catalog.record_miss(image_id)
            finally:
                population.release()
            self._evict(catalog, keep=[image_id])
            return entry

    def _build(self, context: Any, image_service: Any, image_meta: dict,
               ioctx: Any, catalog: catalog_mod.Catalog, size: int,
               population: lock_mod.PopulationLock) -> Entry:
        import rbd
        image_id = image_meta['id']
        name = entry_name(image_id)
        building = name + catalog_mod.BUILDING + population.cookie
        started = time.monotonic()
        # We hold the lock: any other half-built image's builder is gone.
        catalog.reap_building(image_id)
        self._replace_stale(catalog, image_id)
        rbd_writer.rbd_api().create(ioctx, building, size,
                                    old_format=False,
                                    features=rbd.RBD_FEATURE_LAYERING)
        # On failure the pipeline removes ``building``.
        self._pipeline.import_image(
            context, image_service, image_meta,
            import_pipeline.Target(self.pool, building, size))
        try:
            population.check()
            image = rbd_writer.open_image(ioctx, building)
            try:
                fields = self._metadata(image_meta,
                                        time.monotonic() - started,
                                        _allocated_bytes(image))
                if image_meta['disk_format'] != 'raw':
                    # No Glance hash describes qemu-img's output; record
                    # one for ``cinder-rbd-bootcache verify``.
                    fields['content_sha256'] = integrity.digest(
                        image, size, integrity.CONTENT_ALGO)
                for key, value in fields.items():
                    image.metadata_set(META + key, value)
                image.create_snap(SNAPSHOT)
                image.protect_snap(SNAPSHOT)
            finally:
                image.close()
            rbd_writer.rbd_api().rename(ioctx, building, name)
        except Exception:
            catalog.reap_building(image_id)
            raise
        LOG.info('Boot-cache entry %(name)s ready in %(seconds).1f s.',
                 {'name': name, 'seconds': time.monotonic() - started})
        return Entry(self.pool, name, image_id)

    @staticmethod
    def _metadata(image_meta: dict, seconds: float,
                  bytes_used: int) -> dict[str, str]:
        fields = {
            'image_id': image_meta['id'],
            'fingerprint': _fingerprint(image_meta),
            'os_hash_algo': image_meta.get('os_hash_algo') or '',
            'os_hash_value': image_meta.get('os_hash_value') or '',
            'checksum': image_meta.get('checksum') or '',
            'size': str(image_meta.get('size') or ''),
            'virtual_size': str(image_meta.get('virtual_size') or ''),
            'disk_format': image_meta.get('disk_format') or '',
            'bytes_used': str(bytes_used),
            'created': '%.3f' % time.time(),
            'populate_seconds': '%.3f' % seconds,
        }
        return fields

    @staticmethod
    def _replace_stale(catalog: catalog_mod.Catalog, image_id: str) -> None:
        """An entry that no longer matches Glance goes (to the trash if it
        has clones); one that cannot go blocks a new entry."""
        stale = catalog.entry(image_id)
        if stale and not catalog.remove(
                stale, 'it no longer matches the image in Glance'):
            raise NotCacheable(
                'the stale entry %s still has clones of clone format 1 '
                'and cannot be replaced until they are gone' % stale.name)

    # -- maintenance --------------------------------------------------------
    def maintain(self) -> dict[str, int]:
        """Evict by the limits, empty the trash of entries whose clones
        are gone, remove abandoned half-built images; then the figures
        the driver reports in its stats."""
        with self._connect(self.pool) as (_client, ioctx):
            catalog = catalog_mod.Catalog(ioctx)
            catalog.reap_abandoned(self._lease)
            self._evict(catalog)
            catalog.sweep_trash()
            return summary(catalog)

    def _evict(self, catalog: catalog_mod.Catalog,
               keep: Iterable[str] = ()) -> None:
        if not self.limits.any:
            return
        ready = {info.image_id: info for info in catalog.entries(
            include_trash=False) if info.state == catalog_mod.READY}
        candidates = [eviction.Candidate(i.image_id, i.bytes_used,
                                         i.last_activity)
                      for i in ready.values()]
        eviction.evict(candidates, self.limits, time.time(),
                       lambda c, why: catalog.remove(ready[c.image_id], why),
                       keep=keep)


def summary(catalog: catalog_mod.Catalog) -> dict[str, int]:
    """Entries, bytes and counters of the cache, for stats and the CLI."""
    entries = catalog.entries()
    ready = [e for e in entries if e.state == catalog_mod.READY]
    counts = catalog.counters.get(['hits', 'misses'])
    return {
        'entries': len(ready),
        'bytes': sum(e.bytes_used for e in ready),
        'building': sum(e.state == catalog_mod.BUILDING_STATE
                        for e in entries),
        'in_trash': sum(e.state == catalog_mod.IN_TRASH for e in entries),
        'hits': counts['hits'],
        'misses': counts['misses'],
    }


def _allocated_bytes(image: Any) -> int:
    """Bytes of the image's objects that hold data (entries are sparse)."""
    used = []
    image.diff_iterate(0, image.size(), None,
                       lambda _off, length, exists: used.append(
                           length if exists else 0),
                       whole_object=True)
    return sum(used)
