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
Building one entry is :mod:`population`; names are :mod:`naming`'s;
listing and removal live in :mod:`catalog` and :mod:`removal`; which
entries go, in :mod:`eviction`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from typing import Any
from typing import Callable
from typing import Iterable
from typing import Optional
from typing import TypeVar
from typing import Union

from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units

from cinder_rbd_bootcache.bootcache import catalog as catalog_mod
from cinder_rbd_bootcache.bootcache import eviction
from cinder_rbd_bootcache.bootcache import format_version
from cinder_rbd_bootcache.bootcache import lock as lock_mod
from cinder_rbd_bootcache.bootcache import naming
from cinder_rbd_bootcache.bootcache import notifications
from cinder_rbd_bootcache.bootcache import population as population_mod
from cinder_rbd_bootcache.bootcache import retirement
from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline
from cinder_rbd_bootcache import options

LOG = logging.getLogger(__name__)
T = TypeVar('T')


class NotCacheable(Exception):
    """The image cannot have an entry (its virtual size is unknown)."""


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
    #: What the driver reports in its stats (``Catalog.summary`` and
    #: ``format_version.figures``).
    figures: dict[str, int]
    #: What this call's application of the limits took out.
    evicted: list[Evicted] = dataclasses.field(default_factory=list)
    #: Image ids of kept and trashed entries this call removed once
    #: their last clone was gone.
    swept: list[str] = dataclasses.field(default_factory=list)
    #: The pool's format; when this release does not know it, the call
    #: did nothing and ``figures`` hold only the format's.
    format: Optional[format_version.Verdict] = None
    #: Image ids whose entries this call retired: Glance said their
    #: image was deleted or deactivated.
    retired: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A ready entry: clone ``name``'s ``naming.SNAPSHOT`` in ``pool``."""
    pool: str
    name: str
    image_id: str


def entry_size(facts: ImageFacts) -> int:
    """The size of the image's entry: what the image's data fills."""
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
                 limits: eviction.Limits = eviction.Limits(),
                 finishers: Optional[population_mod.Finishers] = None,
                 formats: Optional[format_version.FormatGuard] = None,
                 notifier: notifications.CacheNotifier = notifications.SILENT,
                 glance_checks: retirement.GlanceChecks
                 = retirement.GlanceChecks()) -> None:
        self._connect = connect
        self._pipeline = pipeline
        self.pool = pool
        self._lease = lease
        self._wait_timeout = wait_timeout
        self.limits = limits
        #: Where entries are finished after their volume was handed out:
        #: the caller's, to outlive this object (the driver makes a cache
        #: per create), or one of its own.
        self.finishers = finishers or population_mod.Finishers()
        #: What the pool's format allows: the caller's, so that the pool
        #: is read once per process (the driver's), or one of its own.
        self.formats = formats or format_version.FormatGuard()
        #: Cinder's ``image_volume_cache.*`` notifications of this cache.
        self.notifier = notifier
        #: How the maintenance catches up with images deleted in Glance.
        self.glance_checks = glance_checks

    @classmethod
    def from_configuration(
            cls, configuration: Any, connect: import_pipeline.Connect,
            pipeline: Optional[import_pipeline.ImagePipeline] = None,
            finishers: Optional[population_mod.Finishers] = None,
            formats: Optional[format_version.FormatGuard] = None,
            notifier: notifications.CacheNotifier = notifications.SILENT
    ) -> 'BootCache':
        """The cache of the backend whose options are ``configuration``
        (its cinder.conf section: ``rbd_pool``, ``bootcache_*``); the
        driver's and the CLI's.  ``pipeline`` populates entries (a cache
        without one can look up, count and maintain); ``finishers`` and
        ``formats`` as in ``__init__``; ``notifier`` sends Cinder's
        notifications (the driver's; the command's sends none)."""
        def option(name: str) -> Any:
            return options.value(configuration, name)
        return cls(
            connect, pipeline,
            option('bootcache_pool') or configuration.rbd_pool,
            option('bootcache_lock_lease'), option('bootcache_populate_wait'),
            eviction.Limits(
                max_bytes=option('bootcache_max_size_gb') * units.Gi,
                max_entries=option('bootcache_max_entries'),
                max_idle_seconds=option('bootcache_max_idle_hours') * 3600),
            finishers, formats, notifier,
            retirement.GlanceChecks(
                interval=option('bootcache_glance_check_interval') * 60,
                per_run=option('bootcache_glance_checks_per_run')))

    # -- the pool's format ----------------------------------------------------
    def format(self, refresh: bool = False) -> format_version.Verdict:
        """The pool's format verdict (read once, stamped if it has none:
        see ``format_version``)."""
        known = self.formats.known(self.pool)
        if known is not None and not refresh:
            return known
        with self._connect(self.pool) as (_client, ioctx):
            return self.formats.verdict(ioctx, self.pool, refresh)

    def bypass_reason(self) -> Optional[str]:
        """Why this host leaves the pool's cache alone, or None."""
        verdict = self.format()
        return None if verdict.usable else verdict.problem()

    def lookup(self, facts: ImageFacts) -> Optional[Entry]:
        """The ready entry for this image, or None.  Raises
        FormatNotKnown (as every method that uses the cache) when the
        pool's format is newer than this release knows."""
        with self._connect(self.pool) as (_client, ioctx):
            self.formats.require(ioctx, self.pool)
            return self._lookup(ioctx, facts)

    def _lookup(self, ioctx: Any, facts: ImageFacts) -> Optional[Entry]:
        name = naming.entry_name(facts.id)
        with ceph.open_image(ioctx, name, missing_ok=True) as image:
            if image is None:
                return None
            try:
                recorded = image.metadata_get(naming.META + 'fingerprint')
                # Unprotected: an eviction is removing it (an entry is
                # published protected and stays so until it goes).
                ready = any(s['name'] == naming.SNAPSHOT
                            for s in image.list_snaps()) and \
                    image.is_protected_snap(naming.SNAPSHOT)
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

    def clone_held(self, facts: ImageFacts,
                   clone: Callable[[Entry], T]) -> Optional[T]:
        """``clone(entry)`` while holding the image's population lock, or
        None (nothing cloned) when the image has no ready entry.

        A removal takes that lock (``Removals.remove``), so none runs
        between this lookup and the clone: once the clone exists, a
        removal sees it and keeps or trashes the entry.  Waits up to
        ``bootcache_populate_wait`` for a removal or population that holds
        the lock (HeldByAnother after that)."""
        with self._connect(self.pool) as (_client, ioctx):
            self.formats.require(ioctx, self.pool)
            with lock_mod.holding(ioctx, naming.lock_object(facts.id),
                                  self._lease, 'cloning boot-cache entry',
                                  wait=self._wait_timeout):
                entry = self._lookup(ioctx, facts)
                return clone(entry) if entry else None

    def _published(self, catalog: catalog_mod.Catalog,
                   facts: ImageFacts) -> Optional[Entry]:
        """The entry, if another request has published it: what a waiter
        asks every few tens of ms.  The index answers with one omap read;
        the entry is opened (``_lookup``, several round trips and a librbd
        image context) only once the index has it.  A lost index only
        makes the waiter wait for the lock instead: it takes the lock when
        the builder lets go and looks the entry up again."""
        if catalog.index.get_ready(facts.id) is None:
            return None
        return self._lookup(catalog.ioctx, facts)

    def get_or_populate(self, context: Any, image_service: Any,
                        facts: ImageFacts, count: bool = True,
                        make_volume: Optional[population_mod.MakeVolume]
                        = None,
                        local_path: Optional[str] = None
                        ) -> Union[Entry, population_mod.VolumeFilled]:
        """The entry, populated once if missing, whoever else asks.

        Counts a hit when the entry was there (or another request built
        it), a miss when this call built it; ``count=False`` (the CLI's
        ``warm``, which makes no volume) counts neither.

        ``make_volume`` creates the asking volume's empty RBD image.  When
        this call must populate the entry, it is called and the volume is
        filled from the same download as the entry
        (:meth:`Population.fill`); the call returns ``VolumeFilled`` as
        soon as the volume holds the image, and the entry is finished on
        ``finishers`` (:meth:`Population.finish`).  Without
        ``make_volume``, the entry is finished before the call returns.
        """
        image_id = facts.id
        with contextlib.ExitStack() as connection:
            _client, ioctx = connection.enter_context(self._connect(self.pool))
            self.formats.require(ioctx, self.pool)
            catalog = catalog_mod.Catalog(ioctx, counting=count)
            entry = self._lookup(ioctx, facts)
            if entry:
                self._hit(catalog, context, image_id)
                return entry
            size = entry_size(facts)
            lock = lock_mod.PopulationLock(
                ioctx, naming.lock_object(image_id), self._lease,
                description='populating boot-cache entry')
            published = lock_mod.acquire_or_wait(
                lock.try_acquire, lambda: self._published(catalog, facts),
                timeout=self._wait_timeout, key=lock.key)
            if published:
                LOG.info('Boot-cache entry for image %s was populated by '
                         'another request.', image_id)
                self._hit(catalog, context, image_id)
                return published
            try:
                # It may have become ready between the two checks.
                entry = self._lookup(ioctx, facts)
            except BaseException:
                with excutils.save_and_reraise_exception():
                    lock.release()
            if entry:
                self._hit(catalog, context, image_id)
                lock.release()
                return entry
            if count:
                self.notifier.miss(context, image_id)
            population = population_mod.Population(
                self.pool, self._pipeline, catalog, facts, size, lock,
                self._evict, removed=self._notify_evict)
            model_update = population.fill(context, image_service,
                                           make_volume, local_path)
            if make_volume is None:
                return Entry(self.pool, population.finish(), image_id)
            # The finish owns the connection (and the lock) from here.
            self.finishers.submit(functools.partial(
                population.finish_owning, connection.pop_all()))
            return population_mod.VolumeFilled(model_update or {})

    def _hit(self, catalog: catalog_mod.Catalog, context: Any,
             image_id: str) -> None:
        """Count a create's hit (the catalog counts only creates') and
        say so in Cinder's notification."""
        catalog.record_hit(image_id)
        if catalog.counting:
            self.notifier.hit(context, image_id)

    def _notify_evict(self, image_id: str) -> None:
        """The entry of ``image_id`` left the cache (no create asked)."""
        self.notifier.evict(None, image_id)

    # -- retirement and maintenance -----------------------------------------
    def retire(self, image_id: str, reason: str,
               wait: float = 0) -> Optional[str]:
        """Take the entry of an image Glance no longer serves out of the
        cache (``retirement.retire``); what that did, or None without an
        entry.  Raises PopulationUnderWay as ``retirement.retire``."""
        with self._connect(self.pool) as (_client, ioctx):
            outcome = retirement.retire(catalog_mod.Catalog(ioctx),
                                        image_id, reason, wait)
        if outcome:
            self._notify_evict(image_id)
        return outcome

    def glance_checks_due(self, now: Optional[float] = None) -> list[str]:
        """Image ids the maintenance asks Glance about now
        (``retirement.due``); none in a format this release does not
        know, where even reading the index could rebuild it (a write)."""
        with self._connect(self.pool) as (_client, ioctx):
            if not self.formats.verdict(ioctx, self.pool,
                                        refresh=True).usable:
                return []
            return retirement.due(catalog_mod.Catalog(ioctx),
                                  self.glance_checks,
                                  time.time() if now is None else now)

    def maintain(self, glance_answers: Optional[dict[str, Optional[str]]]
                 = None, now: Optional[float] = None) -> Maintenance:
        """Retire the entries of images Glance no longer serves
        (``glance_answers``: ``retirement.ask_glance``'s, for the images
        of :meth:`glance_checks_due`), evict by the limits, remove kept
        and trashed entries whose clones are gone, remove abandoned
        half-built images; then the figures the driver reports in its
        stats.  The pool's format is read again first: in a format this
        release does not know, it does nothing (``format_version``)."""
        with self._connect(self.pool) as (_client, ioctx):
            verdict = self.formats.verdict(ioctx, self.pool, refresh=True)
            if not verdict.usable:
                return Maintenance(format_version.figures(verdict),
                                   format=verdict)
            catalog = catalog_mod.Catalog(ioctx)
            catalog.reap_abandoned(self._lease)
            retired = retirement.catch_up(
                catalog, glance_answers or {},
                time.time() if now is None else now)
            for image_id in retired:
                self._notify_evict(image_id)
            evicted = self._evict(catalog)
            swept = catalog.sweep_kept() + catalog.sweep_trash()
            return Maintenance(dict(catalog.summary(),
                                    **format_version.figures(verdict)),
                               evicted, swept, verdict, retired)

    def _evict(self, catalog: catalog_mod.Catalog,
               keep: Iterable[str] = ()) -> list[Evicted]:
        """Apply the limits from the index and the counters (no entry is
        opened but the ones that go); what this call took out."""
        if not self.limits.any:
            return []
        # One evictor at a time, on every host.  Each population's finish
        # applies the limits keeping its own new entry; two finishing at
        # once would both read the same entries and each remove the
        # other's new entry, leaving the cache one entry under its limit.
        # The second waits, reads what the first left and finds the
        # limits met.  A holder renews
        # its lease while it works and a dead one's lapses after a lease,
        # so the wait is as long as a population's (bootcache_populate_wait):
        # giving up sooner leaves the limits unapplied until the next stats
        # refresh.
        try:
            with lock_mod.holding(catalog.ioctx, naming.EVICTION_LOCK,
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
                naming.last_used_key(image_id), 0) / 1000.0))
            for image_id, record in ready.items()]
        outcomes: dict[str, str] = {}

        def remove(candidate: eviction.Candidate, why: str) -> bool:
            outcome = self._remove(catalog, candidate.image_id, why)
            if outcome:
                outcomes[candidate.image_id] = outcome
            return bool(outcome)
        removed = eviction.evict(candidates, self.limits, time.time(),
                                 remove, keep=keep)
        evicted = [Evicted(c.image_id, why, outcomes[c.image_id])
                   for c, why in removed]
        for gone in evicted:
            if gone.outcome != ALREADY_GONE:
                self._notify_evict(gone.image_id)
        return evicted

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
