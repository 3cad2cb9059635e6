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

import contextlib
import dataclasses
import threading
import time
from typing import Any, Callable, Iterable, Optional

from oslo_log import log as logging
from oslo_utils import excutils

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


#: Entries being finished in the background (see get_or_populate).
_FINISHERS: set = set()
_FINISHERS_LOCK = threading.Lock()


def join_finishers(timeout: Optional[float] = None) -> None:
    """Wait for this process's background entry finishers, e.g. before a
    test removes entries or a bench times a hit."""
    with _FINISHERS_LOCK:
        running = list(_FINISHERS)
    for finisher in running:
        finisher.join(timeout)


#: Creates the asking volume's empty RBD image; returns where it is.
MakeVolume = Callable[[], import_pipeline.Target]


@dataclasses.dataclass(frozen=True)
class _Built:
    """A half-built entry, filled and checked, not yet published."""
    image_meta: dict
    building: str
    size: int
    started: float
    bytes_written: Optional[int]   # None: converted, count allocated
    fill_later: Optional[Callable[[], None]] = None  # see import_image


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
                        image_meta: dict, count: bool = True,
                        make_volume: Optional[MakeVolume] = None
                        ) -> Optional[Entry]:
        """The entry, populated once if missing, whoever else asks.

        Counts a hit when the entry was there (or another request built
        it), a miss when this call built it; ``count=False`` (the CLI's
        ``warm``, which makes no volume) counts neither.

        ``make_volume`` creates the asking volume's empty RBD image and
        says where it is.  When this call must populate the entry, it is
        called and the volume is filled from the same download as the
        entry; the call returns None as soon as the volume holds the
        image, and the entry is finished in the background (a converted
        image is converted into it from the staged file there; then
        snapshot, publish, count), because a snapshot waits for a monitor
        commit the volume does not need.  Other requests for the image
        wait for that finish, as for any population.  Without
        ``make_volume``, the entry is finished before the call returns.
        """
        image_id = image_meta['id']
        with contextlib.ExitStack() as connection:
            _client, ioctx = connection.enter_context(self._connect(self.pool))
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
                    population.release()
                    return entry
                built = self._fill(context, image_service, image_meta, ioctx,
                                   catalog, size, population, make_volume)
            except BaseException:
                with excutils.save_and_reraise_exception():
                    population.release()
            if make_volume is None:
                return self._finish(built, catalog, population)
            # The finisher owns the connection (and the lock) from here.
            owned = connection.pop_all()
            finisher = threading.Thread(
                target=self._finish_in_background,
                args=(built, catalog, population, owned),
                name='bootcache-finish', daemon=True)
            with _FINISHERS_LOCK:
                _FINISHERS.add(finisher)
            finisher.start()
            return None

    def _fill(self, context: Any, image_service: Any, image_meta: dict,
              ioctx: Any, catalog: catalog_mod.Catalog, size: int,
              population: lock_mod.PopulationLock,
              make_volume: Optional[MakeVolume]) -> '_Built':
        """Import the image into a new half-built entry (and the volume)."""
        import rbd
        image_id = image_meta['id']
        building = (entry_name(image_id) + catalog_mod.BUILDING +
                    population.cookie)
        started = time.monotonic()
        # We hold the lock: any other half-built image's builder is gone.
        catalog.reap_building(image_id)
        self._replace_stale(catalog, image_id)
        rbd_writer.rbd_api().create(ioctx, building, size,
                                    old_format=False,
                                    features=rbd.RBD_FEATURE_LAYERING)
        entry = import_pipeline.Target(self.pool, building, size)
        targets, later = [entry], []
        if make_volume is not None:
            try:
                # The volume now; the entry in the same pass (a stream) or
                # right after the create returns (a conversion).
                targets, later = [make_volume()], [entry]
            except BaseException:
                with excutils.save_and_reraise_exception():
                    catalog.reap_building(image_id)
        # On failure the pipeline removes every target.
        report = self._pipeline.import_image(context, image_service,
                                             image_meta, targets,
                                             later=later)
        return _Built(image_meta, building, size, started,
                      report.bytes_written, report.fill_later)

    def _finish_in_background(self, built: '_Built',
                              catalog: catalog_mod.Catalog,
                              population: lock_mod.PopulationLock,
                              connection: contextlib.ExitStack) -> None:
        try:
            with connection:
                self._finish(built, catalog, population)
        except Exception:
            LOG.exception('Could not finish the boot-cache entry of '
                          'image %s; its volume was made all the same, '
                          'and the next create of the image populates '
                          'the entry again.', built.image_meta['id'])
        finally:
            with _FINISHERS_LOCK:
                _FINISHERS.discard(threading.current_thread())

    def _finish(self, built: '_Built', catalog: catalog_mod.Catalog,
                population: lock_mod.PopulationLock) -> Entry:
        """Snapshot, protect and publish a filled entry, release its lock,
        count the miss and apply the limits; then, for a converted image,
        record the digest ``verify`` checks it against."""
        image_meta = built.image_meta
        image_id = image_meta['id']
        name = entry_name(image_id)
        ioctx = catalog.ioctx
        try:
            if built.fill_later is not None:
                built.fill_later()
            population.check()
            image = rbd_writer.open_image(ioctx, built.building)
            try:
                bytes_used = built.bytes_written
                if bytes_used is None:
                    bytes_used = _allocated_bytes(image)
                fields = self._metadata(image_meta,
                                        time.monotonic() - built.started,
                                        bytes_used)
                for key, value in fields.items():
                    image.metadata_set(META + key, value)
                image.create_snap(SNAPSHOT)
                image.protect_snap(SNAPSHOT)
            finally:
                image.close()
            rbd_writer.rbd_api().rename(ioctx, built.building, name)
        except BaseException:
            with excutils.save_and_reraise_exception():
                try:
                    # Only ours: after a lost lease another builder may
                    # hold the lock and have its own half-built image.
                    catalog.remove_half_built(built.building)
                finally:
                    population.release()
        LOG.info('Boot-cache entry %(name)s ready in %(seconds).1f s.',
                 {'name': name, 'seconds': time.monotonic() - built.started})
        try:
            if image_meta['disk_format'] != 'raw':
                # Off the create path: the entry was checked as it was made
                # (Glance's hash of the download, the format rules); this
                # is only what ``cinder-rbd-bootcache verify`` compares
                # with later.  Under the lock, so that a released lock
                # means nothing of this population has the entry open.
                record_content_digest(ioctx, name, built.size)
        except Exception:
            LOG.exception('Could not record the content digest of %s; the '
                          'first "cinder-rbd-bootcache verify" records it.',
                          name)
        finally:
            population.release()
        catalog.record_miss(image_id)
        self._evict(catalog, keep=[image_id])
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
        # One evictor at a time, on every host.  Each population's finisher
        # applies the limits keeping its own new entry; two finishing at
        # once both listed the same entries, each removed the other's new
        # entry, and the cache ended one entry under its limit (seen in
        # the LRU test on a loaded machine).  The second now waits, lists
        # what the first left and finds the limits met.  A holder renews
        # its lease while it works and a dead one's lapses after a lease,
        # so the wait is as long as a population's (bootcache_populate_wait):
        # giving up sooner leaves the limits unapplied until the next stats
        # refresh.
        evicting = lock_mod.PopulationLock(
            catalog.ioctx, catalog_mod.EVICTION_LOCK, self._lease,
            'boot-cache eviction')
        try:
            lock_mod.acquire_or_wait(evicting.try_acquire, lambda: False,
                                     timeout=self._wait_timeout)
        except TimeoutError:
            LOG.warning('Another process has been applying the boot-cache '
                        'limits for %d s; the next stats refresh applies '
                        'them here.', self._wait_timeout)
            return
        try:
            ready = {info.image_id: info for info in catalog.entries(
                include_trash=False) if info.state == catalog_mod.READY}
            candidates = [eviction.Candidate(i.image_id, i.bytes_used,
                                             i.last_activity)
                          for i in ready.values()]
            eviction.evict(
                candidates, self.limits, time.time(),
                lambda c, why: catalog.remove(ready[c.image_id], why),
                keep=keep)
        finally:
            evicting.release()


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


def record_content_digest(ioctx: Any, name: str, size: int) -> str:
    """Hash a converted entry's golden snapshot and record the digest in
    its metadata (``content_sha256``); returns it."""
    image = rbd_writer.open_image(ioctx, name)
    try:
        image.set_snap(SNAPSHOT)
        value = integrity.digest(image, size, integrity.CONTENT_ALGO)
        image.set_snap(None)
        image.metadata_set(META + 'content_sha256', value)
    finally:
        image.close()
    LOG.info('Recorded the content digest of boot-cache entry %s.', name)
    return value


def _allocated_bytes(image: Any) -> int:
    """Bytes of the image's objects that hold data (entries are sparse)."""
    used = []
    image.diff_iterate(0, image.size(), None,
                       lambda _off, length, exists: used.append(
                           length if exists else 0),
                       whole_object=True)
    return sum(used)
