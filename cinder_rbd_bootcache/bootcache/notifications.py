"""The boot cache in Cinder's own notifications: ``image_volume_cache.*``.

Cinder's image-volume cache (``cinder.image.cache.ImageVolumeCache``)
sends ``image_volume_cache.hit``, ``.miss`` and ``.evict`` at INFO
priority from the ``volume.<host>`` publisher, with the payload
``{'image_id': ..., 'host': ...}``.  The boot cache sends the same three,
from the same publisher, with the same payload, so that what an operator
built on them (meters, dashboards, alerts) sees the boot cache as it saw
Cinder's cache:

* ``hit``: a create is cloned from a ready entry (one that was there, or
  that another request populated while the create waited);
* ``miss``: a create populates the entry (sent as the population starts,
  as Cinder sends its miss before it downloads);
* ``evict``: an entry leaves the cache: evicted by the limits, replaced
  because it no longer matches Glance, or retired because its image was
  deleted or deactivated.  It is sent once, when the entry is no longer
  looked up; an entry kept or trashed for its clones and swept later
  sends nothing more.

They are gated exactly as Cinder gates its own: through
``cinder.rpc.get_notifier``, which hands out a notifier that does nothing
unless ``[oslo_messaging_notifications] driver`` names a driver other
than ``noop``.  A process that never initialised Cinder's rpc (the
``cinder-rbd-bootcache`` command) sends nothing.  A notification that
cannot be sent is logged and never fails a create or a maintenance.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

from cinder import context as cinder_context
from cinder import rpc
from oslo_config import cfg
from oslo_log import log as logging

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

HIT = 'hit'
MISS = 'miss'
EVICT = 'evict'
#: The event types, as Cinder's image-volume cache names them.
EVENT_TYPE = 'image_volume_cache.%s'


def payload(image_id: str, host: str) -> dict[str, str]:
    """The payload of every ``image_volume_cache.*`` notification."""
    return {'image_id': image_id, 'host': host}


class CacheNotifier:
    """Sends the boot cache's ``image_volume_cache.*`` notifications.

    ``host`` is what the payload names: the ``host@backend#pool`` of the
    volume a create makes, or, for what no volume asked for (an
    eviction at maintenance), the backend's.  Without ``host`` nothing
    is sent (:data:`SILENT`).
    """

    def __init__(self, host: Optional[str]) -> None:
        self.host = host

    def for_host(self, host: Optional[str]) -> 'CacheNotifier':
        """The same notifier naming another host (a create's volume's)."""
        return CacheNotifier(host or self.host) if self.host else self

    def hit(self, context: Any, image_id: str) -> None:
        self._send(context, HIT, image_id)

    def miss(self, context: Any, image_id: str) -> None:
        self._send(context, MISS, image_id)

    def evict(self, context: Any, image_id: str) -> None:
        self._send(context, EVICT, image_id)

    def _send(self, context: Any, action: str, image_id: str) -> None:
        if not self.host or not rpc.initialized():
            return
        try:
            # As Cinder's cache: its publisher, its gate (a do-nothing
            # notifier when notifications are off).
            notifier = rpc.get_notifier('volume', CONF.host)
            notifier.info(context or cinder_context.get_admin_context(),
                          EVENT_TYPE % action, payload(image_id, self.host))
        except Exception:
            LOG.warning('Could not send the %(event)s notification of '
                        'image %(image)s.',
                        {'event': EVENT_TYPE % action, 'image': image_id},
                        exc_info=True)


#: Sends nothing: the command's caches, and caches built in tests.
SILENT = CacheNotifier(None)
