"""One population of a boot-cache entry, and where its finish runs.

A create that misses the cache fills the asking volume and the entry from
one download (:meth:`Population.fill`): a stream goes into both at once,
a converted image into the volume first and into the entry from the same
source afterwards (Glance's rbd-store snapshot, or the download staged in
a temporary RBD image that is recorded as half-built until the entry is
filled, see ``image_import.staging``).  The volume is handed out as
soon as it holds the image; the entry is finished afterwards
(:meth:`Population.finish`: the rest of a conversion, metadata,
snapshot, protect, publish, the digest ``verify`` compares with, the
miss, the limits), because a snapshot waits for a monitor commit the
volume does not need.  That finish runs on
:class:`Finishers`, which the driver keeps for as long as it lives.

The population holds the image's lock from before :meth:`fill` until
:meth:`finish` returns (or ``fill`` fails): other requests for the image
wait for the published entry, as for any population.
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

from cinder_rbd_bootcache.bootcache import catalog as catalog_mod
from cinder_rbd_bootcache.bootcache import entry_info
from cinder_rbd_bootcache.bootcache import integrity
from cinder_rbd_bootcache.bootcache import lock as lock_mod
from cinder_rbd_bootcache.bootcache import naming
from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline
from cinder_rbd_bootcache.image_import import staging

LOG = logging.getLogger(__name__)

#: Creates the asking volume's empty RBD image; returns where it is and
#: Cinder's model update of the volume.
MakeVolume = Callable[[], tuple[import_pipeline.Target, dict]]


@dataclasses.dataclass(frozen=True)
class VolumeFilled:
    """The asking volume holds the image: a population filled it along
    with the entry, which it finishes in the background."""
    #: What ``MakeVolume`` returned for Cinder's volume record.
    model_update: dict


#: Applies the cache's limits, keeping the given image ids' entries.
ApplyLimits = Callable[[catalog_mod.Catalog, Iterable[str]], Any]


class Finishers:
    """Background finishes of populations (:meth:`Population.finish`):
    work that outlives the create that started it.

    Each runs on a ``threading.Thread``: a native thread under native
    threads, a green thread where eventlet has patched ``threading``
    (cinder-volume's default), like the create that started it; every
    librbd and librados call it makes goes through :mod:`ceph.api`'s
    and the omap objects' ``tpool_wrap``-ed handles, so none blocks
    eventlet's hub.  :meth:`join` waits for those running, e.g. before
    the caller removes entries or stops.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[threading.Thread] = set()

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` in the background; it must log its own failure."""
        def run() -> None:
            try:
                work()
            finally:
                with self._lock:
                    self._running.discard(thread)
        thread = threading.Thread(target=run, name='bootcache-finish',
                                  daemon=True)
        with self._lock:
            self._running.add(thread)
        thread.start()

    def running(self) -> int:
        """How many finishes have not ended yet."""
        with self._lock:
            return len(self._running)

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait for the finishes running now (each up to ``timeout``)."""
        with self._lock:
            running = list(self._running)
        for thread in running:
            thread.join(timeout)


class Population:
    """Building the entry of ``facts`` under ``lock``, which the caller
    has taken; the entry is ``size`` bytes (see ``cache.entry_size``)."""

    def __init__(self, pool: str, pipeline: import_pipeline.ImagePipeline,
                 catalog: catalog_mod.Catalog, facts: ImageFacts, size: int,
                 lock: lock_mod.PopulationLock,
                 apply_limits: ApplyLimits,
                 removed: Callable[[str], None] = lambda image_id: None
                 ) -> None:
        self.pool = pool
        self._pipeline = pipeline
        self._catalog = catalog
        self.facts = facts
        self.size = size
        self._lock = lock
        self._apply_limits = apply_limits
        #: Told the image id when an entry it replaces left the cache.
        self._removed = removed
        #: The half-built entry's name until it is renamed into place.
        self.building = naming.building_name(facts.id, lock.cookie)
        self._started = 0.0
        self._bytes_written: Optional[int] = None  # None: count allocated
        self._fill_later: Optional[Callable[[], None]] = None

    def fill(self, context: Any, image_service: Any,
             make_volume: Optional[MakeVolume] = None,
             local_path: Optional[str] = None) -> Optional[dict]:
        """Import the image into a new half-built entry and, with
        ``make_volume``, into the volume it makes; that volume's model
        update, or None without one.  If it fails, it removes its
        half-built entry and releases the lock."""
        try:
            return self._fill(context, image_service, make_volume,
                              local_path)
        except BaseException:
            with excutils.save_and_reraise_exception():
                try:
                    # The pipeline removes the images it was filling; not
                    # one whose create failed on the client's side after
                    # the OSD applied it (a timeout), nor one the
                    # failure came before the pipeline had.  Only ours:
                    # others' are reaped by the next holder of the lock.
                    self._catalog.remove_half_built(self.building)
                except Exception:
                    LOG.warning('Could not remove %s after its population '
                                'failed; the next population of the image, '
                                'or the maintenance, removes it.',
                                self.building, exc_info=True)
                finally:
                    self._lock.release()

    def _fill(self, context: Any, image_service: Any,
              make_volume: Optional[MakeVolume],
              local_path: Optional[str]) -> Optional[dict]:
        image_id = self.facts.id
        catalog = self._catalog
        self._started = time.monotonic()
        # We hold the lock: any other half-built image's builder is gone.
        catalog.reap_building(image_id)
        self._replace_stale()
        catalog.add_half_built(self.building)
        ceph.rbd_api().create(catalog.ioctx, self.building, self.size,
                              old_format=False,
                              features=ceph.rbd.RBD_FEATURE_LAYERING)
        entry = import_pipeline.Target(self.pool, self.building, self.size)
        targets, later, model_update = [entry], [], None
        if make_volume is not None:
            try:
                # The volume now; the entry in the same pass (a stream) or
                # right after the create returns (a conversion).
                volume, model_update = make_volume()
            except BaseException:
                with excutils.save_and_reraise_exception():
                    catalog.reap_building(image_id)
            targets, later = [volume], [entry]
        # On failure the pipeline removes every target (and its staging
        # image, recorded as half-built until it is removed: a kill leaves
        # it to the next holder of the lock, or to maintenance).
        name = staging.staging_name(image_id, self._lock.cookie)
        place = staging.Place(
            self.pool, name, record=lambda: catalog.add_half_built(name),
            forget=lambda: catalog.index.drop_building(name))
        report = self._pipeline.import_image(context, image_service,
                                             self.facts, targets,
                                             local_path=local_path,
                                             later=later,
                                             staging_place=place)
        self._bytes_written = report.bytes_written
        self._fill_later = report.fill_later
        return model_update

    def _replace_stale(self) -> None:
        """An entry that no longer matches Glance goes (to the trash, or
        kept under another name, if it has clones): its name is free for
        the new entry."""
        stale = self._catalog.entry(self.facts.id)
        if stale:
            self._catalog.remove(
                stale, 'it no longer matches the image in Glance',
                population_held=True)
            self._removed(self.facts.id)

    def finish(self) -> str:
        """Snapshot, protect and publish the filled entry, release the
        lock, count the miss and apply the limits; for a converted image,
        first convert it into the entry, and record the digest ``verify``
        checks it against before the lock goes.  The entry's name."""
        facts = self.facts
        name = naming.entry_name(facts.id)
        try:
            self._publish(name)
        except BaseException:
            with excutils.save_and_reraise_exception():
                try:
                    # Only ours: after a lost lease another builder may
                    # hold the lock and have its own half-built image.
                    self._catalog.remove_half_built(self.building)
                finally:
                    self._lock.release()
        LOG.info('Boot-cache entry %(name)s ready in %(seconds).1f s.',
                 {'name': name,
                  'seconds': time.monotonic() - self._started})
        try:
            if not facts.is_raw:
                # Off the create path: the entry was checked as it was made
                # (Glance's hash of the download, the format rules); this
                # is only what ``cinder-rbd-bootcache verify`` compares
                # with later.  Under the lock, so that a released lock
                # means nothing of this population has the entry open.
                record_content_digest(self._catalog.ioctx, name, self.size)
        except Exception:
            LOG.exception('Could not record the content digest of %s; the '
                          'first "cinder-rbd-bootcache verify" records it.',
                          name)
        finally:
            self._lock.release()
        self._catalog.record_miss(facts.id)
        self._apply_limits(self._catalog, [facts.id])
        return name

    def finish_owning(self, connection: contextlib.ExitStack) -> None:
        """:meth:`finish` in the background, after the volume was handed
        out: closes ``connection`` (the catalog's) when done, and logs a
        failure, which leaves the volume as it is."""
        try:
            with connection:
                self.finish()
        except Exception:
            LOG.exception('Could not finish the boot-cache entry of '
                          'image %s; its volume was made all the same, '
                          'and the next create of the image populates '
                          'the entry again.', self.facts.id)

    def _publish(self, name: str) -> None:
        ioctx = self._catalog.ioctx
        if self._fill_later is not None:
            self._fill_later()
        self._lock.check()
        with ceph.open_image(ioctx, self.building) as image:
            bytes_used = self._bytes_written
            if bytes_used is None:
                bytes_used = _allocated_bytes(image)
            fields = entry_metadata(self.facts,
                                    time.monotonic() - self._started,
                                    bytes_used)
            for key, value in fields.items():
                image.metadata_set(naming.META + key, value)
            image.create_snap(naming.SNAPSHOT)
            image.protect_snap(naming.SNAPSHOT)
        ceph.rbd_api().rename(ioctx, self.building, name)
        self._catalog.publish(self.building, entry_info.EntryInfo(
            self.facts.id, name, naming.READY, size=self.size,
            metadata=fields))
        # Before the digest: waiters need the entry, not it.
        self._lock.wake_waiters()


def entry_metadata(facts: ImageFacts, seconds: float,
                   bytes_used: int) -> dict[str, str]:
    """What an entry records of itself (``naming.META`` keys): the image's
    facts, the bytes it uses, when it was built and in how many seconds.
    A fact Glance does not give (an empty value) is left out: Ceph's
    Python binding drops empty values from ``metadata_list`` and pairs the
    keys that follow with the wrong values; readers take a missing key as
    an empty one."""
    fields = {k: v for k, v in facts.entry_metadata().items() if v}
    fields.update({
        'bytes_used': str(bytes_used),
        'created': '%.3f' % time.time(),
        'populate_seconds': '%.3f' % seconds,
    })
    return fields


def record_content_digest(ioctx: Any, name: str, size: int) -> str:
    """Hash a converted entry's golden snapshot and record the digest in
    its metadata (``content_sha256``); returns it."""
    with ceph.open_image(ioctx, name) as image:
        image.set_snap(naming.SNAPSHOT)
        value = integrity.digest(image, size, integrity.CONTENT_ALGO)
        image.set_snap(None)
        image.metadata_set(naming.META + 'content_sha256', value)
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
