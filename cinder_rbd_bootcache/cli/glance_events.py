"""What ``listen`` does with each of Glance's image notifications.

=====================  ====================================================
event type             action
=====================  ====================================================
``image.activate``     warm the entry, if the image matches the policy
``image.reactivate``   warm the entry, if the image matches the policy
``image.update``       warm the entry, if the image is active and matches
                       the policy (a property, tag or visibility changed)
``image.deactivate``   retire the entry (``bootcache.retirement``)
``image.delete``       retire the entry
anything else          nothing
=====================  ====================================================

The warm policy (``bootcache_warm_policy``) is ``off``, ``public``
(images whose visibility is public), ``property:NAME`` (images whose
property NAME is true: ``true``, ``yes``, ``1``...) or ``tag:NAME``
(images tagged NAME); it is read from the notification's payload, which
Glance fills with the image's fields.  A warm is exactly
``cinder-rbd-bootcache warm``'s (``warm.warm_image``): single-flight with
creates and other hosts through the image's population lock, with the
same format rules and checks; an image the cache refuses is logged once.
Actions run on a small pool of threads, so that a long download never
holds back the bus; an image already being warmed by this process is not
warmed twice.
"""

from __future__ import annotations

import collections
from concurrent import futures
import dataclasses
import threading
from typing import Any
from typing import Callable
from typing import Optional

from oslo_log import log as logging
from oslo_utils import strutils

from cinder_rbd_bootcache.glance import image_state

LOG = logging.getLogger(__name__)

WARM = 'warm'
RETIRE = 'retire'
IGNORE = 'ignore'

#: How many refused image ids are remembered, so each is logged once.
REMEMBERED_REFUSALS = 1024


class PolicyError(ValueError):
    """``bootcache_warm_policy`` is none of the forms it can take."""


@dataclasses.dataclass(frozen=True)
class WarmPolicy:
    """Which images are warmed when Glance announces them."""
    kind: str = 'off'
    name: str = ''

    @classmethod
    def parse(cls, text: Optional[str]) -> 'WarmPolicy':
        text = (text or 'off').strip()
        if text in ('off', 'public'):
            return cls(text)
        kind, _sep, name = text.partition(':')
        if kind in ('property', 'tag') and name.strip():
            return cls(kind, name.strip())
        raise PolicyError('bootcache_warm_policy = %s: use off, public, '
                          'property:NAME or tag:NAME' % text)

    def matches(self, image: dict) -> bool:
        """Whether the image (a notification's payload) is warmed."""
        if self.kind == 'public':
            return (image.get('visibility') == 'public' or
                    image.get('is_public') is True)
        if self.kind == 'property':
            properties = image.get('properties') or {}
            value = properties.get(self.name, image.get(self.name))
            return strutils.bool_from_string(value)
        if self.kind == 'tag':
            return self.name in (image.get('tags') or [])
        return False


def action(event_type: str, image: dict, policy: WarmPolicy) -> tuple:
    """``(WARM, None)``, ``(RETIRE, reason)`` or ``(IGNORE, why)`` for
    one notification: the table of the module docstring."""
    if event_type == 'image.delete':
        return RETIRE, image_state.DELETED
    if event_type == 'image.deactivate':
        return RETIRE, image_state.DEACTIVATED
    if event_type not in ('image.activate', 'image.reactivate',
                          'image.update'):
        return IGNORE, 'not an event the boot cache acts on'
    if image.get('status') != 'active':
        return IGNORE, 'the image is %s' % image.get('status')
    if not policy.matches(image):
        return IGNORE, 'the image does not match bootcache_warm_policy'
    return WARM, None


class GlanceEvents:
    """oslo.messaging notification endpoint: Glance's ``image.*``.

    ``warm(image_id)`` and ``retire(image_id, reason)`` act on the
    backend (``listen`` passes ``warm.warm_image`` and
    ``BootCache.retire``); ``warm`` raises ``warm.Refused`` for an image
    the cache refuses.  They run on ``workers`` threads.
    """

    filter_rule = None  # every publisher: Glance's are image.<host>

    def __init__(self, policy: WarmPolicy, warm: Callable[[str], str],
                 retire: Callable[[str, str], Optional[str]],
                 refused: type = ValueError, workers: int = 1) -> None:
        self.policy = policy
        self._warm = warm
        self._retire = retire
        self._refused = refused
        self._executor = futures.ThreadPoolExecutor(
            workers, thread_name_prefix='bootcache-glance-events')
        self._lock = threading.Lock()
        self._warming: set[str] = set()
        self._refusals: collections.OrderedDict[str, None] = \
            collections.OrderedDict()

    def info(self, ctxt: dict, publisher_id: str, event_type: str,
             payload: Any, metadata: dict) -> None:
        """One notification (oslo.messaging's endpoint method for the
        INFO priority, which Glance's image events use)."""
        if not isinstance(payload, dict) or not payload.get('id'):
            return
        image_id = payload['id']
        what, detail = action(event_type, payload, self.policy)
        if what == IGNORE:
            LOG.debug('%(event)s of image %(image)s: nothing to do '
                      '(%(why)s).', {'event': event_type, 'image': image_id,
                                     'why': detail})
            return
        if what == RETIRE:
            self.submit(self._do_retire, image_id, detail)
            return
        with self._lock:
            if image_id in self._warming or image_id in self._refusals:
                return
            self._warming.add(image_id)
        self.submit(self._do_warm, image_id)

    def submit(self, work: Callable, *args: Any) -> futures.Future:
        return self._executor.submit(work, *args)

    def _do_retire(self, image_id: str, reason: str) -> None:
        try:
            self._retire(image_id, reason)
        except Exception:
            LOG.warning('Could not retire the boot-cache entry of image '
                        '%s; the periodic maintenance retires it later.',
                        image_id, exc_info=True)

    def _do_warm(self, image_id: str) -> None:
        try:
            result = self._warm(image_id)
            LOG.info('Warmed boot-cache entry of image %(image)s: '
                     '%(result)s.', {'image': image_id, 'result': result})
        except self._refused as exc:
            self._remember_refusal(image_id, exc)
        except Exception:
            LOG.warning('Could not warm the boot-cache entry of image %s; '
                        'the first create of it populates the entry.',
                        image_id, exc_info=True)
        finally:
            with self._lock:
                self._warming.discard(image_id)

    def _remember_refusal(self, image_id: str, exc: Exception) -> None:
        with self._lock:
            if image_id in self._refusals:
                return
            self._refusals[image_id] = None
            while len(self._refusals) > REMEMBERED_REFUSALS:
                self._refusals.popitem(last=False)
        LOG.warning('Not warming image %(image)s: %(why)s.',
                    {'image': image_id, 'why': exc})

    def stop(self, wait: bool = True) -> None:
        """Finish (``wait``) or drop the actions not yet done."""
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
