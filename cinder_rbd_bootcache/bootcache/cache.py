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
from typing import Any
from typing import Callable
from typing import Iterable
from typing import Optional

from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units

from cinder_rbd_bootcache.bootcache import catalog as catalog_mod
from cinder_rbd_bootcache.bootcache import eviction
from cinder_rbd_bootcache.bootcache import integrity
from cinder_rbd_bootcache.bootcache import lock as lock_mod
from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline
from cinder_rbd_bootcache import options

LOG = logging.getLogger(__name__)


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


@dataclasses.dataclass(frozen=True)
class Evicted:
    """An entry one application of the limits took out of the cache."""
    image_id: str
    reason: str
    #: ``catalog.REMOVED``, ``TRASHED`` or ``KEPT``; or ``ALREADY_GONE``.
    outcome: str


#: The outcome of an entry another host or an operator removed first.
ALREADY_GONE = 'already gone'


@dataclasses.dataclass(frozen=True)
class Maintenance:
    """What one :meth:`BootCache.maintain` did, and the figures after."""
    #: What the driver reports in its stats (see :func:`summary`).
    figures: dict[str, int]
    #: What this call's application of the limits took out.
    evicted: list[Evicted] = dataclasses.field(default_factory=list)
    #: Image ids of kept and trashed entries this call removed once
    #: their last clone was gone.
    swept: list[str] = dataclasses.field(default_factory=list)


#: Creates the asking volume's empty RBD image; returns where it is.
MakeVolume = Callable[[], import_pipeline.Target]


@dataclasses.dataclass(frozen=True)
class _Built:
    """A half-built entry, filled and checked, not yet published."""
    facts: ImageFacts
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


def _entry_size(facts: ImageFacts) -> int:
    if facts.is_raw and facts.size:
        return facts.size
    if facts.virtual_size:
        return facts.virtual_size
    raise NotCacheable('image %s has no virtual_size in Glance'
                       % facts.id)


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

    @classmethod
    def from_configuration(
            cls, configuration: Any, connect: import_pipeline.Connect,
            pipeline: Optional[import_pipeline.ImagePipeline] = None
    ) -> 'BootCache':
        """The cache of the backend whose options are ``configuration``
        (its cinder.conf section: ``rbd_pool``, ``bootcache_*``); the
        driver's and the CLI's.  ``pipeline`` populates entries (a cache
        without one can look up, count and maintain)."""
        def option(name: str) -> Any:
            return options.value(configuration, name)
        return cls(
            connect, pipeline,
            option('bootcache_pool') or configuration.rbd_pool,
            option('bootcache_lock_lease'), option('bootcache_populate_wait'),
            eviction.Limits(
                max_bytes=option('bootcache_max_size_gb') * units.Gi,
                max_entries=option('bootcache_max_entries'),
                max_idle_seconds=option('bootcache_max_idle_hours') * 3600))

    def lookup(self, facts: ImageFacts) -> Optional[Entry]:
        """The ready entry for this image, or None."""
        with self._connect(self.pool) as (_client, ioctx):
            return self._lookup(ioctx, facts)

    def _lookup(self, ioctx: Any, facts: ImageFacts) -> Optional[Entry]:
        name = catalog_mod.entry_name(facts.id)
        with ceph.open_image(ioctx, name, missing_ok=True) as image:
            if image is None:
                return None
            try:
                recorded = image.metadata_get(catalog_mod.META + 'fingerprint')
                # Unprotected: an eviction is removing it (an entry is
                # published protected and stays so until it goes).
                ready = any(s['name'] == catalog_mod.SNAPSHOT
                            for s in image.list_snaps()) and \
                    image.is_protected_snap(catalog_mod.SNAPSHOT)
            except (KeyError, ceph.rbd.ImageNotFound):  # no such key
                return None
        if not ready:
            return None
        if recorded != facts.fingerprint:
            LOG.warning('Boot-cache entry %(name)s no longer matches image '
                        '%(image)s in Glance; not using it.',
                        {'name': name, 'image': facts.id})
            return None
        return Entry(self.pool, name, facts.id)

    def _published(self, catalog: catalog_mod.Catalog, facts: ImageFacts,
                   found: list[Entry]) -> bool:
        """Whether another request has published the entry (appended to
        ``found``): what a waiter asks every few tens of ms.  The index
        answers with one omap read; the entry is opened (``_lookup``,
        several round trips and a librbd image context) only once the
        index has it.  A lost index only makes the waiter wait for the
        lock instead: it takes the lock when the builder lets go and looks
        the entry up again."""
        if catalog.index.get_ready(facts.id) is None:
            return False
        entry = self._lookup(catalog.ioctx, facts)
        if entry is None:
            return False
        found.append(entry)
        return True

    def get_or_populate(self, context: Any, image_service: Any,
                        facts: ImageFacts, count: bool = True,
                        make_volume: Optional[MakeVolume] = None,
                        local_path: Optional[str] = None
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
        image_id = facts.id
        with contextlib.ExitStack() as connection:
            _client, ioctx = connection.enter_context(self._connect(self.pool))
            catalog = catalog_mod.Catalog(ioctx, counting=count)
            entry = self._lookup(ioctx, facts)
            if entry:
                catalog.record_hit(image_id)
                return entry
            size = _entry_size(facts)
            population = lock_mod.PopulationLock(
                ioctx, catalog_mod.lock_object(image_id), self._lease,
                description='populating boot-cache entry')
            published: list[Entry] = []
            finished = lock_mod.acquire_or_wait(
                population.try_acquire,
                lambda: self._published(catalog, facts, published),
                timeout=self._wait_timeout, key=population.key)
            if finished:
                LOG.info('Boot-cache entry for image %s was populated by '
                         'another request.', image_id)
                catalog.record_hit(image_id)
                return published[-1]
            try:
                # It may have become ready between the two checks.
                entry = self._lookup(ioctx, facts)
                if entry:
                    catalog.record_hit(image_id)
                    population.release()
                    return entry
                built = self._fill(context, image_service, facts, ioctx,
                                   catalog, size, population, make_volume,
                                   local_path)
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

    def _fill(self, context: Any, image_service: Any, facts: ImageFacts,
              ioctx: Any, catalog: catalog_mod.Catalog, size: int,
              population: lock_mod.PopulationLock,
              make_volume: Optional[MakeVolume],
              local_path: Optional[str] = None) -> '_Built':
        """Import the image into a new half-built entry (and the volume)."""
        image_id = facts.id
        building = catalog_mod.building_name(image_id, population.cookie)
        started = time.monotonic()
        # We hold the lock: any other half-built image's builder is gone.
        catalog.reap_building(image_id)
        self._replace_stale(catalog, image_id)
        catalog.add_half_built(building)
        ceph.rbd_api().create(ioctx, building, size, old_format=False,
                              features=ceph.rbd.RBD_FEATURE_LAYERING)
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
                                             facts, targets,
                                             local_path=local_path,
                                             later=later)
        return _Built(facts, building, size, started,
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
                          'the entry again.', built.facts.id)
        finally:
            with _FINISHERS_LOCK:
                _FINISHERS.discard(threading.current_thread())

    def _finish(self, built: '_Built', catalog: catalog_mod.Catalog,
                population: lock_mod.PopulationLock) -> Entry:
        """Snapshot, protect and publish a filled entry, release its lock,
        count the miss and apply the limits; then, for a converted image,
        record the digest ``verify`` checks it against."""
        facts = built.facts
        image_id = facts.id
        name = catalog_mod.entry_name(image_id)
        ioctx = catalog.ioctx
        try:
            if built.fill_later is not None:
                built.fill_later()
            population.check()
            with ceph.open_image(ioctx, built.building) as image:
                bytes_used = built.bytes_written
                if bytes_used is None:
                    bytes_used = _allocated_bytes(image)
                fields = self._metadata(facts,
                                        time.monotonic() - built.started,
                                        bytes_used)
                for key, value in fields.items():
                    image.metadata_set(catalog_mod.META + key, value)
                image.create_snap(catalog_mod.SNAPSHOT)
                image.protect_snap(catalog_mod.SNAPSHOT)
            ceph.rbd_api().rename(ioctx, built.building, name)
            catalog.publish(built.building, catalog_mod.EntryInfo(
                image_id, name, catalog_mod.READY, size=built.size,
                metadata=fields))
            # Before the digest below: waiters need the entry, not it.
            population.wake_waiters()
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
            if not facts.is_raw:
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
    def _metadata(facts: ImageFacts, seconds: float,
                  bytes_used: int) -> dict[str, str]:
        fields = facts.entry_metadata()
        fields.update({
            'bytes_used': str(bytes_used),
            'created': '%.3f' % time.time(),
            'populate_seconds': '%.3f' % seconds,
        })
        return fields

    @staticmethod
    def _replace_stale(catalog: catalog_mod.Catalog, image_id: str) -> None:
        """An entry that no longer matches Glance goes (to the trash, or
        kept under another name, if it has clones): its name is free for
        the new entry."""
        stale = catalog.entry(image_id)
        if stale:
            catalog.remove(stale, 'it no longer matches the image in Glance',
                           population_held=True)

    # -- maintenance --------------------------------------------------------
    def maintain(self) -> Maintenance:
        """Evict by the limits, remove kept and trashed entries whose
        clones are gone, remove abandoned half-built images; then the
        figures the driver reports in its stats."""
        with self._connect(self.pool) as (_client, ioctx):
            catalog = catalog_mod.Catalog(ioctx)
            catalog.reap_abandoned(self._lease)
            evicted = self._evict(catalog)
            swept = catalog.sweep_kept() + catalog.sweep_trash()
            return Maintenance(summary(catalog), evicted, swept)

    def _evict(self, catalog: catalog_mod.Catalog,
               keep: Iterable[str] = ()) -> list[Evicted]:
        """Apply the limits from the index and the counters (no entry is
        opened but the ones that go); what this call took out."""
        if not self.limits.any:
            return []
        # One evictor at a time, on every host.  Each population's finisher
        # applies the limits keeping its own new entry; two finishing at
        # once both read the same entries, each removed the other's new
        # entry, and the cache ended one entry under its limit (seen in
        # the LRU test on a loaded machine).  The second now waits, reads
        # what the first left and finds the limits met.  A holder renews
        # its lease while it works and a dead one's lapses after a lease,
        # so the wait is as long as a population's (bootcache_populate_wait):
        # giving up sooner leaves the limits unapplied until the next stats
        # refresh.
        try:
            with lock_mod.holding(catalog.ioctx, catalog_mod.EVICTION_LOCK,
                                  self._lease, 'boot-cache eviction',
                                  wait=self._wait_timeout):
                return self._apply_limits(catalog, keep)
        except lock_mod.HeldByAnother:
            LOG.warning('Another process has been applying the boot-cache '
                        'limits for %d s; the next stats refresh applies '
                        'them here.', self._wait_timeout)
            return []

    def _apply_limits(self, catalog: catalog_mod.Catalog,
                      keep: Iterable[str]) -> list[Evicted]:
        ready = catalog.indexed().ready
        counts = catalog.counters.all()
        candidates = [eviction.Candidate(
            image_id, record.bytes_used,
            max(record.created, counts.get(
                catalog_mod.last_used_key(image_id), 0) / 1000.0))
            for image_id, record in ready.items()]
        outcomes: dict[str, str] = {}

        def remove(candidate: eviction.Candidate, why: str) -> bool:
            outcome = self._remove(catalog, candidate.image_id, why)
            if outcome:
                outcomes[candidate.image_id] = outcome
            return bool(outcome)
        removed = eviction.evict(candidates, self.limits, time.time(),
                                 remove, keep=keep)
        return [Evicted(c.image_id, why, outcomes[c.image_id])
                for c, why in removed]

    @staticmethod
    def _remove(catalog: catalog_mod.Catalog, image_id: str,
                reason: str) -> Optional[str]:
        """What taking the entry out did, or None: it stays as it is."""
        info = catalog.entry(image_id)
        if info is None:
            # Gone already (another host's eviction, an operator).
            catalog.index.drop_ready(image_id)
            return ALREADY_GONE
        try:
            return catalog.remove(info, reason)
        except catalog_mod.PopulationUnderWay:
            # It is being replaced (its image changed in Glance) or was
            # evicted and is being populated again: in use either way.
            LOG.info('Keeping boot-cache entry %(name)s (%(why)s) for now: '
                     'its image is being populated.',
                     {'name': info.name, 'why': reason})
            return None


def summary(catalog: catalog_mod.Catalog) -> dict[str, int]:
    """Entries, bytes and counters of the cache, for stats and the CLI,
    from the index: no entry is opened."""
    contents = catalog.indexed()
    counts = catalog.counters.get(['hits', 'misses'])
    return {
        'entries': len(contents.ready),
        'bytes': sum(r.bytes_used for r in contents.ready.values()),
        'building': len(contents.building),
        'in_trash': len(contents.trash),
        'kept': len(contents.kept),
        'hits': counts['hits'],
        'misses': counts['misses'],
    }


def record_content_digest(ioctx: Any, name: str, size: int) -> str:
    """Hash a converted entry's golden snapshot and record the digest in
    its metadata (``content_sha256``); returns it."""
    with ceph.open_image(ioctx, name) as image:
        image.set_snap(catalog_mod.SNAPSHOT)
        value = integrity.digest(image, size, integrity.CONTENT_ALGO)
        image.set_snap(None)
        image.metadata_set(catalog_mod.META + 'content_sha256', value)
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
