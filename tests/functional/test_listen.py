"""``listen`` on the sandbox: the real oslo.messaging notification
listener (the ``fake://`` transport, in-process) with the endpoint the
command builds, acting on the boot-cache backend of the suite through
the same ``warm_image`` and ``BootCache.retire`` as the command; Glance's
notifications are published with the payload Glance sends."""

import time

from oslo_utils import units
import pytest

from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.cli import listen
from tests.functional import conftest

PROPERTY = 'bootcache_warm'


class InProcessBackend:
    """What ``listen.endpoint_of`` uses of ``cli.backend.Backend``, from
    the harness's backend and its Glance stand-in."""

    def __init__(self, under_test, images):
        from oslo_config import cfg
        self._under_test = under_test
        self._images = images
        self.section = under_test.driver.configuration
        self.conf = cfg.CONF
        self.name = under_test.name

    def driver(self):
        return self._under_test.driver

    def boot_cache(self, on_progress=None):
        driver = self._under_test.driver
        return driver._boot_cache(driver._import_pipeline())

    def image_service(self):
        return self._images

    @staticmethod
    def context():
        from cinder import context
        return context.get_admin_context()


def glance_payload(meta):
    """An image's notification payload, with the fields Glance's
    notifier puts in it."""
    fields = ('id', 'name', 'status', 'visibility', 'protected', 'owner',
              'size', 'virtual_size', 'disk_format', 'container_format',
              'checksum', 'os_hash_algo', 'os_hash_value', 'min_disk',
              'min_ram')
    payload = {key: meta.get(key) for key in fields}
    payload.update(
        is_public=meta.get('visibility') == 'public',
        properties=dict(meta.get('properties') or {}), tags=[],
        created_at=meta['created_at'].isoformat(),
        updated_at=meta['updated_at'].isoformat(),
        deleted=meta.get('status') == 'deleted', deleted_at=None)
    return payload


def wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'not reached: %s' % predicate
        time.sleep(0.1)


@pytest.fixture
def bus(clean_cinder, boot_cache_backend):
    """Listeners of the boot-cache backend on an in-memory bus, warm
    policy ``property:bootcache_warm``; yields ``publish(event_type,
    meta)``.  ``publish.listen(pool)`` starts one more listener (the
    first is in the backend's pool)."""
    from oslo_config import cfg
    import oslo_messaging
    group = boot_cache_backend.name
    cfg.CONF.set_override('bootcache_warm_policy', 'property:' + PROPERTY,
                          group=group)
    transport = oslo_messaging.get_notification_transport(cfg.CONF,
                                                          url='fake:/')
    running = []

    def start(pool):
        endpoint = listen.endpoint_of(
            InProcessBackend(boot_cache_backend, clean_cinder.runner.images),
            workers=2)
        listener = listen.notification_listener(
            transport, ['notifications'], pool, endpoint)
        listener.start()
        running.append((listener, endpoint))
    notifier = oslo_messaging.Notifier(transport, 'image.glance-host',
                                       driver='messaging',
                                       topics=['notifications'])

    def publish(event_type, meta):
        notifier.info({}, event_type, glance_payload(meta))
    publish.listen = start
    start(listen.pool_name(None, group))
    try:
        yield publish
    finally:
        for listener, endpoint in running:
            listener.stop()
            listener.wait()
            endpoint.stop()
        transport.cleanup()
        cfg.CONF.clear_override('bootcache_warm_policy', group=group)


def test_warms_what_the_policy_names_and_retires_deleted_images(
        clean_cinder, boot_cache_backend, entries, bus):
    runner = clean_cinder.runner
    images = runner.images
    path = runner.disk('raw')[0]
    warmed = images.add(path, 'raw', properties={PROPERTY: 'true'})
    other = images.add(path, 'raw')
    try:
        bus('image.activate', other)
        bus('image.activate', warmed)
        wait_for(lambda: entries() == [catalog.entry_name(warmed['id'])])
        assert images.downloads[warmed['id']] == 1
        # Not in the policy: never warmed.
        assert images.downloads[other['id']] == 0
        # The first create clones the warmed entry: no download.
        first = runner.create(boot_cache_backend, 'after warm', warmed)
        assert (first.ok, first.downloads) == (True, 0), first
        assert first.parent == 'volumes/%s@%s' % (
            catalog.entry_name(warmed['id']), catalog.SNAPSHOT)
        # Deleted in Glance: the entry (no volume depends on it) goes.
        images.delete(warmed['id'])
        bus('image.delete', dict(warmed, status='deleted'))
        wait_for(lambda: entries() == [])
        with conftest.pool_catalog(clean_cinder) as found:
            assert found.entries() == []
    finally:
        for meta in (warmed, other):
            images.delete(meta['id'])


def test_warms_and_a_create_at_once_download_once(
        clean_cinder, boot_cache_backend, entries, bus):
    """Two listeners that both hear the event (two pools: as two
    backends sharing one Ceph pool would) and a create of the image, all
    at once: one download, the population lock in Ceph makes them
    single-flight."""
    runner = clean_cinder.runner
    images = runner.images
    bus.listen('another-backend')
    meta = images.add(runner.disk('raw')[0], 'raw',
                      properties={PROPERTY: 'yes'})
    # The last 8 MiB slowly: the three overlap.
    images.inject_fault(meta['id'], 'slow', 56 * units.Mi)
    try:
        bus('image.activate', meta)
        created = runner.create(boot_cache_backend, 'during warm', meta)
        assert created.ok, created
        wait_for(lambda: entries() == [catalog.entry_name(meta['id'])])
        boot_cache_backend.join_finishers()
        assert images.downloads[meta['id']] == 1
    finally:
        images.delete(meta['id'])
