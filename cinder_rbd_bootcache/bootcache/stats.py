"""The boot cache's part of the backend's volume stats.

Cinder refreshes a backend's stats periodically; that refresh is also when
the cache applies its limits (``BootCache.maintain``), so that no create
waits for an eviction.
"""

from __future__ import annotations

from typing import Callable

from oslo_log import log as logging

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.upstream import compat

LOG = logging.getLogger(__name__)


def volume_stats(boot_cache: Callable[[], cache.BootCache]) -> dict:
    """Apply the limits of ``boot_cache()``; its figures as stats
    (``bootcache_<figure>``), or none when that failed (logged: the next
    refresh tries again)."""
    try:
        # Lists and removes RBD images: off eventlet's hub.
        figures = compat.tpool_wrap(boot_cache()).maintain().figures
    except Exception:
        LOG.exception('Could not refresh the boot cache\'s figures or '
                      'apply its limits; the next stats refresh tries '
                      'again.')
        return {}
    return {'bootcache_%s' % key: value for key, value in figures.items()}
