"""The pool-level facts and clean-ups a failed import needs.

When a pool or an OSD is full, librados holds every write until space
comes back (that is the 10-minute hang upstream shows).  An import's ioctx
therefore carries librados' "full try" flag: the OSD answers ENOSPC at once
instead, and still accepts the deletes that free space.  ``rbd remove``
alone cannot empty a full pool: its first step updates the pool's
directory, a write, which fails.  ``discard_and_remove_image`` therefore
discards the image's data first (object deletes, accepted), then removes
the image, retrying until the monitor has seen the freed space and
cleared the full flag.
"""

from __future__ import annotations

from typing import Any
from typing import Callable

from oslo_log import log as logging
import tenacity

from cinder_rbd_bootcache.ceph import api as ceph

LOG = logging.getLogger(__name__)

#: Pool flags (``ceph osd pool ls detail``) under which writes wait.
FULL_FLAGS = ('full', 'full_quota', 'full_no_quota')


def full_flags(client: Any, pool: str) -> list[str]:
    """The flags that say ``pool`` is full.

    One ``osd pool ls detail``, asked before every import and clone.  Not
    ``osd dump`` as well: since Luminous the monitor clears the old
    cluster-wide full flag and marks each pool on a full OSD full
    instead (``full``, ``full_no_quota``), so the pool's flags say it
    all on the Ceph releases this driver supports; and ``osd dump`` is
    the whole OSD map as JSON, megabytes on a cluster of a thousand OSDs,
    for every volume created.
    """
    try:
        pools = ceph.mon_command(client, 'osd pool ls', detail='detail')
    except ceph.MonCommandError as exc:
        LOG.warning('Cannot read the flags of pool %(pool)s: %(err)s',
                    {'pool': pool, 'err': exc.err})
        return []
    for entry in pools:
        if entry.get('pool_name') == pool:
            names = entry.get('flags_names', '').split(',')
            return [f for f in names if f in FULL_FLAGS]
    return []


def refuse_if_full(client: Any, pool: str, error: Callable[..., Exception],
                   **details: Any) -> None:
    """Raise ``error(pool=pool, flags=..., **details)`` if ``pool`` is
    flagged full (``full_flags``; ``flags`` names them).

    Asked before anything is written to a pool (on a full pool an
    ordinary write waits for ever) and after a failed write, whose cause
    the flags then name.
    """
    flags = full_flags(client, pool)
    if flags:
        raise error(pool=pool, flags=', '.join(flags), **details)


def discard_image(ioctx: Any, name: str) -> bool:
    """Free the data of RBD image ``name`` (deletes are allowed on a full
    pool, writes are not); False if it does not exist."""
    with ceph.open_image(ioctx, name, missing_ok=True) as image:
        if image is None:
            return False
        image.discard(0, image.size())
    return True


def discard_and_remove_image(ioctx: Any, name: str, timeout: float = 60,
                             interval: float = 1) -> bool:
    """Discard the data of RBD image ``name``, then remove it, retrying
    while the pool is full; False if absent.  For an image nobody else
    uses (a failed import's target): also empties a full pool.

    The image must not be open elsewhere (its watch would keep it busy).

    ``ioctx`` must carry the full-try flag (``set_osdmap_full_try``).
    Raises the last rbd error if the image is still there after ``timeout``.
    """
    proxy = ceph.rbd_api()
    if not discard_image(ioctx, name):
        return False

    @tenacity.retry(retry=tenacity.retry_if_exception_type(ceph.rbd.Error),
                    stop=tenacity.stop_after_delay(timeout),
                    wait=tenacity.wait_fixed(interval),
                    before_sleep=lambda state: LOG.debug(
                        'Removal of %(name)s incomplete (%(err)s); '
                        'retrying.', {'name': name,
                                      'err': state.outcome.exception()}),
                    reraise=True)
    def remove() -> None:
        try:
            proxy.remove(ioctx, name)
        except ceph.rbd.Error:
            # Refused by a full pool, librbd reports ENOENT although the
            # directory still names the image: only the directory tells.
            if name in proxy.list(ioctx):
                raise

    remove()
    return True
