"""Entries whose Glance image was deleted or deactivated leave the cache.

Retiring an entry is a removal like an eviction's
(:meth:`removal.Removals.remove`): the entry is no longer looked up, so
it is never cloned again; it is removed at once when no volume depends on
it, else moved to the RBD trash (clone format 2) or kept (format 1) and
swept by the first maintenance after its last clone is gone.

Two ways lead here: Glance's notifications (``image.delete``,
``image.deactivate``; see ``listener``), heard within seconds, and, for
events nobody heard (no listener running, a bus restart), the
maintenance's catch-up: at each stats refresh it asks Glance about at
most ``per_run`` entries whose image it has not confirmed for
``interval`` seconds, least recently confirmed first.  When an image was
last confirmed is a counter in the pool (``naming.confirmed_key``), so
every host sharing the pool shares the work; an entry counts as
confirmed when it is published (its population read the image from
Glance).
"""

from __future__ import annotations

import dataclasses
from typing import Callable
from typing import Optional

from oslo_log import log as logging

from cinder_rbd_bootcache.bootcache import catalog as catalog_mod
from cinder_rbd_bootcache.bootcache import naming

LOG = logging.getLogger(__name__)

#: ``ask(image_id)``: why the image's entry must go (``glance.image_state``),
#: None while Glance serves the image; raises when Glance cannot say.
Ask = Callable[[str], Optional[str]]


@dataclasses.dataclass(frozen=True)
class GlanceChecks:
    """How often the maintenance asks Glance about the cache's images:
    each image at most once per ``interval`` seconds, at most
    ``per_run`` images per maintenance; ``interval`` 0 never."""
    interval: int = 0
    per_run: int = 0

    @property
    def on(self) -> bool:
        return bool(self.interval and self.per_run)


def retire(catalog: catalog_mod.Catalog, image_id: str, reason: str,
           wait: float = 0) -> Optional[str]:
    """Take the image's ready entry out of the cache: the outcome of
    ``Removals.remove`` (``REMOVED``, ``TRASHED``, ``KEPT``), or None if
    the image has no ready entry.  Raises ``PopulationUnderWay`` when the
    image's population lock stays taken for ``wait`` seconds (a
    population of the image is under way: it fails, or the next
    retirement or catch-up takes its entry out)."""
    info = catalog.entry(image_id)
    if info is None:
        return None
    outcome = catalog.remove(info, reason, wait=wait)
    LOG.info('Boot-cache entry %(name)s retired (%(why)s): %(outcome)s.',
             {'name': info.name, 'why': reason, 'outcome': outcome})
    return outcome


def due(catalog: catalog_mod.Catalog, checks: GlanceChecks,
        now: float) -> list[str]:
    """Image ids of ready entries to ask Glance about now: at most
    ``checks.per_run``, least recently confirmed first; none confirmed
    within ``checks.interval`` seconds of ``now``."""
    if not checks.on:
        return []
    ready = catalog.indexed().ready
    confirmed = catalog.counters.get(
        [naming.confirmed_key(image_id) for image_id in ready])
    last = {image_id: max(record.created,
                          confirmed[naming.confirmed_key(image_id)] / 1000.0)
            for image_id, record in ready.items()}
    stale = sorted((when, image_id) for image_id, when in last.items()
                   if now - when >= checks.interval)
    return [image_id for _when, image_id in stale[:checks.per_run]]


def ask_glance(image_ids: list[str], ask: Ask) -> dict[str, Optional[str]]:
    """Glance's answers about ``image_ids`` (from :func:`due`): why each
    image's entry must go, or None.  When Glance cannot answer, the
    asking stops there (logged): the next maintenance asks again."""
    answers: dict[str, Optional[str]] = {}
    for image_id in image_ids:
        try:
            answers[image_id] = ask(image_id)
        except Exception as exc:
            LOG.warning('Could not ask Glance whether image %(image)s still '
                        'exists (%(error)s); the next stats refresh asks '
                        'again. Check the [glance] service user in '
                        'cinder.conf.', {'image': image_id, 'error': exc})
            break
    return answers


def catch_up(catalog: catalog_mod.Catalog,
             answers: dict[str, Optional[str]], now: float) -> list[str]:
    """Retire the entries of images Glance no longer serves (``answers``
    from :func:`ask_glance`) and record the others as confirmed at
    ``now``; the image ids retired."""
    retired, confirmed = [], {}
    for image_id, reason in sorted(answers.items()):
        if reason is None:
            confirmed[naming.confirmed_key(image_id)] = int(now * 1000)
            continue
        try:
            if retire(catalog, image_id, reason):
                retired.append(image_id)
        except catalog_mod.PopulationUnderWay:
            LOG.info('Image %s is being populated; its entry is retired '
                     'by a later stats refresh.', image_id)
    if confirmed:
        catalog.counters.update(maximum=confirmed)
    return retired
