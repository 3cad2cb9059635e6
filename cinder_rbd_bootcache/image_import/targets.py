"""The RBD images an import fills, and what a failure does to them.

A target is an existing, all-zero RBD image as large as the volume.  A
full pool fails an import at once (the connection's "full try" flag, see
``ceph.pool``) and is named as the cause (``CephPoolFull``); a failed
import removes every target, also from a full pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
from typing import Any
from typing import Callable
from typing import ContextManager
from typing import Iterator
from typing import Sequence

from oslo_log import log as logging

from cinder_rbd_bootcache.ceph import pool as ceph_pool
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.image_import import rbd_writer

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Target:
    """An existing, all-zero RBD image of ``size`` bytes to fill."""
    pool: str
    name: str
    size: int


#: ``connect(pool)`` -> context manager yielding (rados client, ioctx) whose
#: operations time out after ``stall_timeout``, with the full-try flag
#: (``ceph.api.connector``).
Connect = Callable[[str], ContextManager[tuple]]


def refuse_if_full(connect: Connect, pool: str, image_id: str) -> None:
    """Raise CephPoolFull if ``pool`` is flagged full."""
    with connect(pool) as (client, _ioctx):
        ceph_pool.refuse_if_full(client, pool, errors.CephPoolFull,
                                 image_id=image_id)


def check_room(image_id: str, size: int,
               targets: Sequence[Target]) -> None:
    """Raise ImageLargerThanVolume if ``size`` bytes do not fit every
    target."""
    room = min(t.size for t in targets)
    if size > room:
        raise errors.ImageLargerThanVolume.for_volume(image_id, size, room)


@contextlib.contextmanager
def write_errors(client: Any, target: Target, image_id: str,
                 stall_timeout: int) -> Iterator[None]:
    """A failed librbd write becomes the Cinder error that says why: a
    full pool, a write that timed out, or the write's own error."""
    try:
        yield
    except rbd_writer.WriteError as exc:
        ceph_pool.refuse_if_full(client, target.pool, errors.CephPoolFull,
                                 image_id=image_id)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise errors.CephPoolFull(pool=target.pool, image_id=image_id,
                                      flags=os.strerror(exc.errno))
        if exc.errno == errno.ETIMEDOUT:
            raise errors.ImportStalled(image_id=image_id, pool=target.pool,
                                       timeout=stall_timeout)
        raise errors.ImportWriteFailed(image_id=image_id, pool=target.pool,
                                       reason=str(exc))


def remove(connect: Connect, targets: Sequence[Target]) -> None:
    """Remove every target (absent ones are skipped).  Each one's data is
    discarded before any is removed: on a full pool a removal waits until
    the pool has room again, which the data of the targets not yet
    removed may hold."""
    for target in targets:
        try:
            with connect(target.pool) as (_client, ioctx):
                ceph_pool.discard_image(ioctx, target.name)
        except Exception:
            LOG.debug('Could not discard %(pool)s/%(name)s before '
                      'removing it.', {'pool': target.pool,
                                       'name': target.name},
                      exc_info=True)
    for target in targets:
        _remove_one(connect, target)


def _remove_one(connect: Connect, target: Target) -> None:
    try:
        with connect(target.pool) as (_client, ioctx):
            ceph_pool.discard_and_remove_image(ioctx, target.name)
        LOG.info('Removed partial RBD image %(pool)s/%(name)s.',
                 {'pool': target.pool, 'name': target.name})
    except Exception:
        LOG.exception('Could not remove partial RBD image %(pool)s/'
                      '%(name)s; remove it with "rbd rm".',
                      {'pool': target.pool, 'name': target.name})
