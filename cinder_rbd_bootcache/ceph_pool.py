"""The pool-level facts and clean-ups a failed import needs.

When a pool or an OSD is full, librados holds every write until space
comes back (that is the 10-minute hang upstream shows).  An import's ioctx
therefore carries librados' "full try" flag: the OSD answers ENOSPC at once
instead, and still accepts the deletes that free space.  ``rbd remove``
alone cannot empty a full pool: its first step updates the pool's
directory, a write, which fails.  ``remove_image`` therefore discards the
image's data first (object deletes, accepted), then removes the image,
retrying until the monitor has seen the freed space and cleared the full
flag (about 5-10 s on the sandbox).
"""

from __future__ import annotations

import json
import time
from typing import Any

from oslo_log import log as logging

from cinder_rbd_bootcache import compat
from cinder_rbd_bootcache import rbd_writer

LOG = logging.getLogger(__name__)

#: Pool flags (``ceph osd pool ls detail``) under which writes wait.
FULL_FLAGS = ('full', 'full_quota', 'full_no_quota')


def full_flags(client: Any, pool: str) -> list[str]:
    """The flags that say ``pool`` (or the whole cluster) is full."""
    ret, out, err = client.mon_command(json.dumps(
        {'prefix': 'osd pool ls', 'detail': 'detail', 'format': 'json'}), b'')
    if ret != 0:
        LOG.warning('Cannot read the flags of pool %(pool)s: %(err)s',
                    {'pool': pool, 'err': err})
        return []
    flags: list[str] = []
    for entry in json.loads(out):
        if entry.get('pool_name') == pool:
            names = entry.get('flags_names', '').split(',')
            flags = [f for f in names if f in FULL_FLAGS]
    ret, out, _err = client.mon_command(json.dumps(
        {'prefix': 'osd dump', 'format': 'json'}), b'')
    if ret == 0 and 'full' in json.loads(out).get('flags', '').split(','):
        flags.append('cluster full')
    return flags


def discard_image(ioctx: Any, name: str) -> bool:
    """Free the data of RBD image ``name`` (deletes are allowed on a full
    pool, writes are not); False if it does not exist."""
    import rbd
    try:
        image = rbd_writer.open_image(ioctx, name)
    except rbd.ImageNotFound:
        return False
    try:
        image.discard(0, image.size())
    finally:
        image.close()
    return True


def remove_image(ioctx: Any, name: str, timeout: float = 60,
                 interval: float = 1) -> bool:
    """Remove RBD image ``name``, also from a full pool; False if absent.

    The image must not be open elsewhere (its watch would keep it busy).

    ``ioctx`` must carry the full-try flag (``set_osdmap_full_try``).
    Raises the last rbd error if the image is still there after ``timeout``.
    """
    import rbd
    proxy = compat.tpool_wrap(rbd.RBD())
    if not discard_image(ioctx, name):
        return False
    deadline = time.monotonic() + timeout
    while True:
        try:
            proxy.remove(ioctx, name)
            return True
        except rbd.Error as exc:
            # Refused by a full pool, librbd reports ENOENT although the
            # directory still names the image: only the directory tells.
            if name not in proxy.list(ioctx):
                return True
            if time.monotonic() >= deadline:
                raise
            LOG.debug('Removal of %(name)s incomplete (%(err)s); retrying.',
                      {'name': name, 'err': exc})
            time.sleep(interval)
