"""``listen``: keep the cache current from Glance's notifications.

A service of its own (one per backend on each cinder-volume host, or on
any host with the backend's cinder.conf), rather than a thread inside
cinder-volume: it is restarted, upgraded and watched apart from the
volume service, a warm's download never competes with creates for
cinder-volume's threads, it reaches a Glance bus that may not be
Cinder's (``[bootcache_listener] transport_url``), and it runs the same
way whichever concurrency mode cinder-volume uses.

It listens on Glance's notification topics with a pool of its own
(``[bootcache_listener] pool``, by default one per backend): every
listener of a backend shares that pool's queue, so each event reaches
one of them, however many hosts run it, and other consumers (Ceilometer)
keep their own copy.  What it does with each event is
:mod:`glance_events`'s table; it runs until SIGTERM or SIGINT, then
finishes the actions under way.
"""

from __future__ import annotations

import signal
import threading
from typing import Any
from typing import Optional

from cliff import command
import oslo_messaging

from cinder_rbd_bootcache.cli import glance_events
from cinder_rbd_bootcache.cli import warm
from cinder_rbd_bootcache import options

#: Seconds a retirement waits for a population of the image under way.
POPULATION_WAIT = 60


def pool_name(configured: Optional[str], backend: str) -> str:
    """The listener pool of ``backend`` (``configured``, else one named
    after the backend): every host's listener of one backend shares it,
    so an event is acted on once per backend."""
    return configured or 'cinder-rbd-bootcache.%s' % backend


def notification_listener(transport: Any, topics: list[str], pool: str,
                          endpoint: glance_events.GlanceEvents,
                          exchange: Optional[str] = None) -> Any:
    """An oslo.messaging notification listener of ``endpoint`` on
    ``topics`` of ``exchange`` (Glance's; None: the transport's default
    exchange), in ``pool``, on its own threads."""
    targets = [oslo_messaging.Target(topic=topic, exchange=exchange)
               for topic in topics]
    return oslo_messaging.get_notification_listener(
        transport, targets, [endpoint], executor='threading', pool=pool)


def endpoint_of(backend: Any, workers: int) -> glance_events.GlanceEvents:
    """The endpoint acting on ``backend`` (a ``cli.backend.Backend``),
    with ``workers`` threads."""
    section = backend.section
    policy = glance_events.WarmPolicy.parse(section.bootcache_warm_policy)
    images = backend.image_service()
    context = backend.context()

    def warm_one(image_id: str) -> str:
        return warm.warm_image(backend, images, context, image_id)

    def retire(image_id: str, reason: str) -> Any:
        return backend.boot_cache().retire(image_id, reason,
                                           wait=POPULATION_WAIT)
    return glance_events.GlanceEvents(
        policy, warm_one, retire, refused=warm.Refused, workers=workers)


class Listen(command.Command):
    """Warm and retire entries as Glance announces images (a service).

    Listens to Glance's notifications (image.activate, image.update,
    image.deactivate, image.delete) with a pool of its own, one per
    backend: run it under systemd on one or more hosts per backend.
    Images matching bootcache_warm_policy are warmed as ``warm`` does;
    entries of deleted or deactivated images are retired.  Runs until
    SIGTERM or SIGINT.
    """

    def take_action(self, parsed_args: Any) -> int:
        backend = self.app.backend
        conf = backend.conf
        options.register_listener_opts(conf)
        group = conf.bootcache_listener
        endpoint = endpoint_of(backend, group.workers)
        transport = oslo_messaging.get_notification_transport(
            conf, url=group.transport_url)
        pool = pool_name(group.pool, backend.name)
        topics = group.topics
        listener = notification_listener(transport, topics, pool, endpoint,
                                         exchange=group.exchange)
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_args: stopping.set())
        listener.start()
        self.app.LOG.info('Listening to Glance on %(topics)s of exchange '
                          '%(exchange)s, pool %(pool)s (warm policy: '
                          '%(policy)s).',
                          {'topics': ', '.join(topics), 'pool': pool,
                           'exchange': group.exchange,
                           'policy': backend.section.bootcache_warm_policy})
        try:
            while not stopping.wait(1):
                pass
        finally:
            listener.stop()
            listener.wait()
            endpoint.stop()
            transport.cleanup()
        return 0
