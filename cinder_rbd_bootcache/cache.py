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
cloned; a building image whose holder died is left for the operator CLI
(issue 5) to reap.

What an entry records (in its own RBD metadata, ``bootcache.*`` keys) is
the Glance image's id, hashes, sizes and format, plus when it was built and
how long that took; an entry whose hash no longer matches Glance's is not
used.  Not yet: eviction, hit counters, stats (issue 4, rest).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional

from oslo_log import log as logging

from cinder_rbd_bootcache import import_pipeline
from cinder_rbd_bootcache import lock as lock_mod
from cinder_rbd_bootcache import rbd_writer

LOG = logging.getLogger(__name__)

PREFIX = 'bootcache.'
SNAPSHOT = 'golden'
META = 'bootcache.'


class NotCacheable(Exception):
    """The image cannot have an entry (its virtual size is unknown)."""


@dataclasses.dataclass(frozen=True)
class Entry:
    pool: str
    name: str
    image_id: str


def entry_name(image_id: str) -> str:
    return PREFIX + image_id


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
                 pipeline: import_pipeline.ImagePipeline, pool: str,
                 lease: int, wait_timeout: int) -> None:
        self._connect = connect
        self._pipeline = pipeline
        self.pool = pool
        self._lease = lease
        self._wait_timeout = wait_timeout

    def lookup(self, image_meta: dict) -> Optional[Entry]:
        """The ready entry for this image, or None."""
        import rbd
        name = entry_name(image_meta['id'])
        with self._connect(self.pool) as (_client, ioctx):
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
                        image_meta: dict) -> Entry:
        """The entry, populated once if missing, whoever else asks."""
        entry = self.lookup(image_meta)
        if entry:
            return entry
        size = _entry_size(image_meta)
        image_id = image_meta['id']
        with self._connect(self.pool) as (_client, ioctx):
            population = lock_mod.PopulationLock(
                ioctx, PREFIX + 'lock.' + image_id, self._lease,
                description='populating boot-cache entry')
            finished = lock_mod.acquire_or_wait(
                population.try_acquire,
                lambda: self.lookup(image_meta) is not None,
                timeout=self._wait_timeout)
            if finished:
                LOG.info('Boot-cache entry for image %s was populated by '
                         'another request.', image_id)
                return self.lookup(image_meta)
            try:
                # It may have become ready between the two checks.
                return (self.lookup(image_meta) or
                        self._build(context, image_service, image_meta,
                                    ioctx, size, population))
            finally:
                population.release()

    def _build(self, context: Any, image_service: Any, image_meta: dict,
               ioctx: Any, size: int,
               population: lock_mod.PopulationLock) -> Entry:
        import rbd
        image_id = image_meta['id']
        name = entry_name(image_id)
        building = '%s.building.%s' % (name, population.cookie)
        started = time.monotonic()
        self._remove_stale(ioctx, name)
        rbd.RBD().create(ioctx, building, size, old_format=False,
                         features=rbd.RBD_FEATURE_LAYERING)
        # On failure the pipeline removes ``building``.
        self._pipeline.import_image(
            context, image_service, image_meta,
            import_pipeline.Target(self.pool, building, size))
        try:
            population.check()
            image = rbd_writer.open_image(ioctx, building)
            try:
                for key, value in self._metadata(
                        image_meta, time.monotonic() - started).items():
                    image.metadata_set(META + key, value)
                image.create_snap(SNAPSHOT)
                image.protect_snap(SNAPSHOT)
            finally:
                image.close()
            rbd.RBD().rename(ioctx, building, name)
        except Exception:
            self._remove_building(ioctx, building)
            raise
        LOG.info('Boot-cache entry %(name)s ready in %(seconds).1f s.',
                 {'name': name, 'seconds': time.monotonic() - started})
        return Entry(self.pool, name, image_id)

    @staticmethod
    def _metadata(image_meta: dict, seconds: float) -> dict[str, str]:
        fields = {
            'image_id': image_meta['id'],
            'fingerprint': _fingerprint(image_meta),
            'os_hash_algo': image_meta.get('os_hash_algo') or '',
            'os_hash_value': image_meta.get('os_hash_value') or '',
            'checksum': image_meta.get('checksum') or '',
            'size': str(image_meta.get('size') or ''),
            'virtual_size': str(image_meta.get('virtual_size') or ''),
            'disk_format': image_meta.get('disk_format') or '',
            'created': '%.0f' % time.time(),
            'populate_seconds': '%.3f' % seconds,
        }
        return fields

    def _remove_stale(self, ioctx: Any, name: str) -> None:
        """An entry that no longer matches Glance, if it has no clones."""
        import rbd
        try:
            image = rbd_writer.open_image(ioctx, name)
        except rbd.ImageNotFound:
            return
        try:
            snaps = [s['name'] for s in image.list_snaps()]
            if SNAPSHOT in snaps:
                image.set_snap(SNAPSHOT)
                children = list(image.list_children())
                image.set_snap(None)
                if children:
                    raise NotCacheable(
                        'stale entry %s still has %d clones; eviction to '
                        'the RBD trash is not implemented yet'
                        % (name, len(children)))
                image.unprotect_snap(SNAPSHOT)
                image.remove_snap(SNAPSHOT)
        finally:
            image.close()
        rbd.RBD().remove(ioctx, name)
        LOG.info('Removed stale boot-cache entry %s.', name)

    @staticmethod
    def _remove_building(ioctx: Any, building: str) -> None:
        import rbd
        try:
            image = rbd_writer.open_image(ioctx, building)
        except rbd.ImageNotFound:
            return
        try:
            if any(s['name'] == SNAPSHOT for s in image.list_snaps()):
                try:
                    image.unprotect_snap(SNAPSHOT)
                except rbd.InvalidArgument:
                    pass  # not protected yet
                image.remove_snap(SNAPSHOT)
        finally:
            image.close()
        rbd.RBD().remove(ioctx, building)
