"""The cache keeps itself current, end to end: glance-api publishes its
notifications to the environment's RabbitMQ, ``cinder-rbd-bootcache
listen`` runs for each backend as the operations guide tells an operator
to, and Cinder (with the boot cache) sends its own notifications there.

Backend ``ceph``'s warm policy is ``property:bootcache_warm``: images
uploaded with that property set are warmed, every other image (the other
scenarios', whose first create must still download) is not; a property
lets one scenario make a matching and a non-matching image side by side,
which ``public`` (every image the admin uploads) would not.  Backend
``ceph2`` holds at most one entry (``bootcache_max_entries = 1``), so a
second image's population evicts the first: the eviction cinder-volume
itself makes and announces.

Images are in Glance's file store (``local``): an image in the rbd store
is cloned from Glance's pool and never cached.
"""

import threading
import time

from oslo_config import cfg
import oslo_messaging
import pytest

from bootcache_testkit.e2e import environment
from bootcache_testkit.e2e import services
from bootcache_testkit.harness import disk_images
from tests.e2e.test_scenarios import check_bytes
from tests.e2e.test_scenarios import create
from tests.e2e.test_scenarios import delete
from tests.e2e.test_scenarios import MiB

#: Seconds within which an entry whose image Glance deleted is gone, when
#: no volume depends on it (the listener retires it as it hears the
#: delete) or after its last volume is deleted (the maintenance at the
#: next stats refresh, every 5 s here, sweeps it).
GONE_WITHIN = 60
#: Seconds a warm may take after the upload, at most, before a scenario
#: fails.
WARM_WITHIN = 180
WARM = {environment.WARM_PROPERTY: 'true'}
#: How long the warm of scenario a took (scenario b waits longer).
MEASURED = {}


@pytest.fixture(scope='module')
def disks(tmp_path_factory):
    d = tmp_path_factory.mktemp('keeping-current')
    return {'raw': disk_images.make_raw(str(d / 'image.raw'), 64 * MiB,
                                        16 * MiB)}


def entry_images(env, image_id, pool='volumes'):
    """Names of the RBD images of the image's boot-cache entry in
    ``pool`` (ready, building or kept) and in its trash."""
    import rbd
    prefix = 'bootcache.%s' % image_id
    with env.sandbox.client() as cluster, \
            cluster.open_ioctx(pool) as ioctx:
        names = [n for n in rbd.RBD().list(ioctx) if n.startswith(prefix)]
        names += ['trash:' + t['name'] for t in rbd.RBD().trash_list(ioctx)
                  if t['name'].startswith(prefix)]
    return names


def ready(env, image_id, pool='volumes'):
    """Whether the image's entry is published: ``bootcache.<id>`` with
    its ``golden`` snapshot."""
    import rbd
    with env.sandbox.client() as cluster, \
            cluster.open_ioctx(pool) as ioctx:
        try:
            with rbd.Image(ioctx, 'bootcache.%s' % image_id,
                           read_only=True) as image:
                return 'golden' in {s['name'] for s in image.list_snaps()}
        except rbd.ImageNotFound:
            return False


def wait_until(predicate, timeout, what):
    """Seconds until ``predicate()`` holds; fails after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, what
        time.sleep(0.5)
    return time.monotonic() - started


def entry_states(env, image_id, backend='ceph'):
    """The states ``cinder-rbd-bootcache list`` shows for the image."""
    import json
    rows = json.loads(env.operator('--backend', backend, 'list', '-f',
                                   'json').stdout)
    return sorted(r['State'] for r in rows if r['Image ID'] == image_id)


def upload_warmed(env, disks, name):
    """A raw image uploaded with the warm property; (image, seconds from
    the end of the upload to its ready entry)."""
    image = env.upload_image(disks['raw'], 'raw', 'local', name,
                             properties=WARM)
    seconds = wait_until(lambda: ready(env, image['id']), WARM_WITHIN,
                         'image %s not warmed' % image['id'])
    return image, seconds


def delete_image(env, image_id, pool='volumes'):
    """Delete the image in Glance; its entry must then be gone."""
    env.openstack('image', 'delete', image_id, user='admin')
    return wait_until(lambda: not entry_images(env, image_id, pool),
                      GONE_WITHIN, 'entry of %s not gone' % image_id)


def test_a_uploaded_image_matching_the_policy_is_warmed(env, disks, record):
    image, seconds = upload_warmed(env, disks, 'k-a-warmed')
    MEASURED['warm'] = seconds
    assert env.downloads(image['id']) == 1
    assert entry_states(env, image['id']) == ['ready']
    volume_id, status, create_seconds = create(env, image['id'], 'k-a')
    assert status == 'available'
    assert check_bytes(env, volume_id, disks['raw']) == (
        'volumes/bootcache.%s@golden' % image['id'])
    assert env.downloads(image['id']) == 1
    record('a warmed on upload', warm_seconds_after_upload=round(seconds, 2),
           create_seconds=round(create_seconds, 2))
    delete(env, volume_id)
    delete_image(env, image['id'])


def test_b_image_not_matching_the_policy_is_not_warmed(env, disks, record):
    image = env.upload_image(disks['raw'], 'raw', 'local', 'k-b-cold')
    waited = max(2 * MEASURED.get('warm', 30), MEASURED.get('warm', 30) + 20)
    time.sleep(waited)
    assert entry_images(env, image['id']) == []
    assert env.downloads(image['id']) == 0
    record('b not warmed', waited_seconds=round(waited, 1))
    env.openstack('image', 'delete', image['id'], user='admin')


def test_c_deleted_image_entry_without_volumes_goes_at_once(env, disks,
                                                            record):
    image, _seconds = upload_warmed(env, disks, 'k-c-unused')
    seconds = delete_image(env, image['id'])
    record('c entry of a deleted image, no volume',
           gone_seconds=round(seconds, 2))


def test_c_deleted_image_entry_goes_after_its_last_volume(env, disks,
                                                          record):
    image, _seconds = upload_warmed(env, disks, 'k-c-used')
    volume_id, status, _ = create(env, image['id'], 'k-c')
    assert status == 'available'
    assert check_bytes(env, volume_id, disks['raw']) == (
        'volumes/bootcache.%s@golden' % image['id'])
    env.openstack('image', 'delete', image['id'], user='admin')
    # No longer looked up (never cloned again), kept for its clone.
    retired = wait_until(
        lambda: 'ready' not in entry_states(env, image['id']), GONE_WITHIN,
        'entry of deleted image %s still ready' % image['id'])
    assert entry_states(env, image['id']) in (['kept'], ['in trash'])
    assert entry_images(env, image['id'])
    delete(env, volume_id)
    gone = wait_until(lambda: not entry_images(env, image['id']),
                      GONE_WITHIN, 'entry of %s not swept' % image['id'])
    record('c entry of a deleted image, one volume',
           retired_seconds=round(retired, 2),
           gone_after_volume_seconds=round(gone, 2))


def test_e_two_listeners_of_one_backend_download_once(env, disks, record):
    """A second listener of backend ``ceph`` (as on a second
    cinder-volume host) shares its pool: each event reaches one of them,
    and the image is downloaded once."""
    with env.another_listener('ceph') as second:
        image, seconds = upload_warmed(env, disks, 'k-e-two')
        # Give a second warm, if there were one, the time of the first.
        time.sleep(seconds + 5)
        assert env.downloads(image['id']) == 1
        warmed_by = [name for name in (env.listeners['ceph'], second)
                     if image['id'] in open(env.log(name)).read()]
    record('e two listeners', warm_seconds_after_upload=round(seconds, 2),
           heard_by=warmed_by)
    delete_image(env, image['id'])


class _CacheNotifications:
    """An endpoint keeping the ``image_volume_cache.*`` notifications."""
    filter_rule = oslo_messaging.NotificationFilter(
        event_type=r'^image_volume_cache\.')

    def __init__(self):
        self.received = []
        self.lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            self.received.append((event_type, publisher_id, payload))

    def of(self, image_id):
        with self.lock:
            return [r for r in self.received
                    if r[2].get('image_id') == image_id]


@pytest.fixture
def cache_notifications(env):
    """A consumer of Cinder's notification topic (``notifications``, the
    exchange Cinder publishes to) in a pool of its own, as a Ceilometer
    would be; stopped afterwards."""
    pool = 'e2e-image-volume-cache'
    endpoint = _CacheNotifications()
    transport = oslo_messaging.get_notification_transport(
        cfg.ConfigOpts(), url=env.transport_url)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic='notifications')],
        [endpoint], executor='threading', pool=pool)
    listener.start()
    try:
        services.wait_for_consumers(env.supervisor, pool, 1)
        yield endpoint
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


def test_f_cinder_notifications_of_the_boot_cache(env, disks, record,
                                                  cache_notifications):
    """On backend ``ceph2`` (one entry at most): the first create of an
    image is a miss, the second a hit, and the population of another
    image evicts the first image's entry (cinder-volume applies the
    limits as that population finishes): an evict."""
    first = env.upload_image(disks['raw'], 'raw', 'local', 'k-f-first')
    second = env.upload_image(disks['raw'], 'raw', 'local', 'k-f-second')
    volumes = []
    for image, name in ((first, 'k-f-1'), (first, 'k-f-2'),
                        (second, 'k-f-3')):
        volume_id, status, _ = create(env, image['id'], name,
                                      volume_type='ceph2')
        volumes.append(volume_id)
        assert status == 'available'
    wait_until(lambda: 'image_volume_cache.evict' in {
        r[0] for r in cache_notifications.of(first['id'])}, GONE_WITHIN,
        'no evict of %s: %s' % (first['id'], cache_notifications.received))
    events = cache_notifications.of(first['id'])
    assert [e[0] for e in events] == [
        'image_volume_cache.miss', 'image_volume_cache.hit',
        'image_volume_cache.evict'], events
    for event_type, publisher_id, payload in events:
        assert set(payload) == {'image_id', 'host'}, payload
        assert '@ceph2' in payload['host'], payload
        assert publisher_id.startswith('volume.'), publisher_id
    assert [e[0] for e in cache_notifications.of(second['id'])] == [
        'image_volume_cache.miss']
    record('f cinder notifications',
           events=[(e[0], e[2]['host']) for e in events])
    delete(env, *volumes)
    for image in (first, second):
        delete_image(env, image['id'], pool='volumes2')


def test_d_rabbitmq_restart_then_upload_is_still_warmed(env, disks, record):
    """RabbitMQ restarted (its queues are gone with it) while the
    listeners run: they reconnect and declare their pools again, and the
    next upload is warmed.  It runs last in this module, so that what
    runs before it does not depend on the services' reconnection."""
    started = time.monotonic()
    env.restart_rabbitmq()
    reconnected = time.monotonic() - started
    image, seconds = upload_warmed(env, disks, 'k-d-after-restart')
    assert env.downloads(image['id']) == 1
    record('d rabbitmq restart', listeners_back_seconds=round(reconnected, 1),
           warm_seconds_after_upload=round(seconds, 2))
    delete_image(env, image['id'])
    env.supervisor.check_running()
