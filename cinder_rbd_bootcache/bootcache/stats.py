"""The boot cache's part of the backend's volume stats.

Cinder refreshes a backend's stats periodically; that refresh is also when
the cache applies its limits and catches up with images deleted in Glance
(``BootCache.maintain``), so that no create waits for an eviction.
"""

from __future__ import annotations

from typing import Callable
from typing import Optional

from oslo_log import log as logging

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.bootcache import retirement
from cinder_rbd_bootcache.upstream import compat

LOG = logging.getLogger(__name__)


def volume_stats(boot_cache: Callable[[], cache.BootCache],
                 ask: Optional[retirement.Ask] = None) -> dict:
    """Maintain ``boot_cache()`` (``BootCache.maintain``: the catch-up
    with Glance, through ``ask``, then the limits); its figures as stats
    (``bootcache_<figure>``), or none when that failed (logged: the next
    refresh tries again)."""
    try:
        # Lists and removes RBD images: off eventlet's hub.  Glance is
        # asked here, in the caller's thread, as Cinder asks it.
        found = compat.tpool_wrap(boot_cache())
        answers = retirement.ask_glance(found.glance_checks_due(), ask) \
            if ask else {}
        figures = found.maintain(answers).figures
    except Exception:
        LOG.exception('Could not refresh the boot cache\'s figures or '
                      'apply its limits; the next stats refresh tries '
                      'again.')
        return {}
    return {'bootcache_%s' % key: value for key, value in figures.items()}
