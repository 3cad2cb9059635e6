"""A download staged in a temporary RBD image for qemu-img.

qemu-img needs random access to a qcow2, vmdk, vhd, vhdx or vdi image,
which a Glance download is not.  Instead of a file in
``image_conversion_dir`` (``bootcache_import_staging = local``), the
download is streamed into a temporary RBD image of exactly the image's
size, as a raw image is streamed into a volume (``rbd_writer``: zero runs
stay holes, bounded aio writes), hashed on the way
(``verify.ChecksumVerifier``), then converted by qemu-img from there
(``sources.rbd_image``) and removed.

Its name, ``bootcache.<IMAGE_ID>.building.<COOKIE>.staging``, says whose
it is and that it is temporary, and is a half-built name of the boot
cache (``bootcache.naming``): a population records it in the cache's
index before it creates it (``Place.record``), so that after a kill of
cinder-volume the next population of the image, or the cache's
maintenance once nobody holds the image's population lock, removes it
like any half-built entry.  A staging image of an import outside the
cache is in the pool of its first target and recorded nowhere; its
importer removes it on every failure it lives through.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Callable
from typing import Iterable
import uuid

from oslo_log import log as logging
from oslo_utils import excutils

from cinder_rbd_bootcache.bootcache import naming
from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.ceph import pool as ceph_pool
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.image_import import blocks
from cinder_rbd_bootcache.image_import import rbd_writer
from cinder_rbd_bootcache.image_import.settings import Settings
from cinder_rbd_bootcache.image_import import targets as targets_mod
from cinder_rbd_bootcache.image_import import verify

LOG = logging.getLogger(__name__)

#: Ends the name of every staging image.
SUFFIX = '.staging'


def staging_name(image_id: str, cookie: str) -> str:
    """The staging image of ``image_id`` for the holder of ``cookie``."""
    return naming.building_name(image_id, cookie) + SUFFIX


def _nothing() -> None:
    """A place nobody records."""


@dataclasses.dataclass(frozen=True)
class Place:
    """Where a download is staged, and how its owner records it:
    ``record`` runs before the image is created, ``forget`` once it is
    removed."""
    pool: str
    name: str
    record: Callable[[], None] = _nothing
    forget: Callable[[], None] = _nothing

    @classmethod
    def unrecorded(cls, pool: str, image_id: str) -> 'Place':
        """A place in ``pool`` that no index records."""
        return cls(pool, staging_name(image_id, uuid.uuid4().hex))


def stage(connect: targets_mod.Connect, settings: Settings, place: Place,
          facts: ImageFacts, chunks: Iterable[bytes], hashing: bool,
          tracker: Any) -> None:
    """Create the staging image, as large as the image Glance stores,
    and fill it with the download, checked (``hashing``: see
    ``verify.ChecksumVerifier``).  On failure it is removed."""
    image_id = facts.id
    size = facts.size
    target = targets_mod.Target(place.pool, place.name, size)
    verifier = verify.ChecksumVerifier(facts, hashing)
    place.record()
    try:
        with connect(place.pool) as (client, ioctx):
            _create(client, ioctx, place, size, image_id)
            with ceph.open_image(ioctx, place.name) as image:
                writer = rbd_writer.SparseWriter(image,
                                                 settings.writes_in_flight)
                try:
                    offset = 0
                    for block in blocks.aligned_blocks(
                            verify.guarded(chunks, image_id, size),
                            settings.block_size):
                        targets_mod.check_room(image_id,
                                               offset + len(block),
                                               [target])
                        verifier.update(block)
                        with targets_mod.write_errors(
                                client, target, image_id,
                                settings.stall_timeout):
                            writer.write(offset, block)
                        offset += len(block)
                        tracker.advance(len(block))
                    with targets_mod.write_errors(client, target, image_id,
                                                  settings.stall_timeout):
                        writer.drain()
                        image.flush()
                except BaseException:
                    with excutils.save_and_reraise_exception():
                        # Never close the image with writes in flight.
                        writer.abandon()
        verifier.finish()
    except BaseException:
        with excutils.save_and_reraise_exception():
            remove(connect, place)
    LOG.info('Staged image %(image)s in %(pool)s/%(name)s.',
             {'image': image_id, 'pool': place.pool, 'name': place.name})


def _create(client: Any, ioctx: Any, place: Place, size: int,
            image_id: str) -> None:
    try:
        ceph.rbd_api().create(ioctx, place.name, size, old_format=False,
                              features=ceph.rbd.RBD_FEATURE_LAYERING)
    except ceph.rbd.Error:
        with excutils.save_and_reraise_exception():
            ceph_pool.refuse_if_full(client, place.pool, errors.CephPoolFull,
                                     image_id=image_id)


def remove(connect: targets_mod.Connect, place: Place) -> None:
    """Remove the staging image (if it exists) and forget it."""
    targets_mod.remove(connect, [targets_mod.Target(place.pool, place.name,
                                                    0)])
    try:
        place.forget()
    except Exception:
        # The record alone is harmless: the next population or
        # maintenance finds no image and drops it.
        LOG.warning('Could not drop the record of staging image '
                    '%(pool)s/%(name)s.', {'pool': place.pool,
                                           'name': place.name},
                    exc_info=True)
