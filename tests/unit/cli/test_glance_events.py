"""What ``listen`` does with each of Glance's notifications: the event
table, the warm policy, refusals logged once, and the real oslo.messaging
listener on the ``fake://`` transport delivering each event once per pool
(the actions are recorders here; tests/functional/test_listen.py warms
and retires real entries)."""

import threading
import unittest
from unittest import mock

import ddt
from oslo_config import cfg
import oslo_messaging

from cinder_rbd_bootcache.cli import glance_events
from cinder_rbd_bootcache.cli import listen
from cinder_rbd_bootcache.glance import image_state
from cinder_rbd_bootcache import options

PUBLIC = {'id': 'img', 'status': 'active', 'visibility': 'public',
          'properties': {}, 'tags': []}


def image(**fields):
    return dict(PUBLIC, **fields)


@ddt.ddt
class ActionTableTest(unittest.TestCase):

    @ddt.data(
        ('image.activate', image(), 'public', glance_events.WARM),
        ('image.reactivate', image(), 'public', glance_events.WARM),
        ('image.update', image(), 'public', glance_events.WARM),
        ('image.update', image(status='queued'), 'public',
         glance_events.IGNORE),
        ('image.activate', image(visibility='private'), 'public',
         glance_events.IGNORE),
        ('image.activate', image(), 'off', glance_events.IGNORE),
        ('image.activate', image(visibility='private',
                                 properties={'warm': 'true'}),
         'property:warm', glance_events.WARM),
        ('image.activate', image(properties={'warm': 'no'}),
         'property:warm', glance_events.IGNORE),
        ('image.activate', image(), 'property:warm', glance_events.IGNORE),
        ('image.activate', image(tags=['golden']), 'tag:golden',
         glance_events.WARM),
        ('image.activate', image(tags=['other']), 'tag:golden',
         glance_events.IGNORE),
        ('image.delete', image(status='deleted'), 'off',
         glance_events.RETIRE),
        ('image.deactivate', image(status='deactivated'), 'off',
         glance_events.RETIRE),
        ('image.create', image(status='queued'), 'public',
         glance_events.IGNORE),
        ('image.upload', image(), 'public', glance_events.IGNORE),
        ('image.send', image(), 'public', glance_events.IGNORE),
    )
    @ddt.unpack
    def test_action(self, event_type, payload, policy, expected):
        what, _detail = glance_events.action(
            event_type, payload, glance_events.WarmPolicy.parse(policy))
        self.assertEqual(expected, what)

    @ddt.data(('image.delete', image_state.DELETED),
              ('image.deactivate', image_state.DEACTIVATED))
    @ddt.unpack
    def test_retire_reason(self, event_type, reason):
        self.assertEqual((glance_events.RETIRE, reason),
                         glance_events.action(event_type, image(),
                                              glance_events.WarmPolicy()))

    @ddt.data('all', 'property:', 'tag: ', 'visibility:public')
    def test_policy_errors(self, text):
        self.assertRaises(glance_events.PolicyError,
                          glance_events.WarmPolicy.parse, text)

    @ddt.data((None, ('off', '')), ('', ('off', '')),
              ('public', ('public', '')),
              ('property:os_warm', ('property', 'os_warm')),
              (' tag:golden ', ('tag', 'golden')))
    @ddt.unpack
    def test_policy_forms(self, text, expected):
        policy = glance_events.WarmPolicy.parse(text)
        self.assertEqual(expected, (policy.kind, policy.name))


class Recorder:
    def __init__(self, refuse=()):
        self.warmed, self.retired = [], []
        self.refuse = set(refuse)
        self.done = threading.Semaphore(0)

    def warm(self, image_id):
        try:
            if image_id in self.refuse:
                raise ValueError('vhd cannot be cached')
            self.warmed.append(image_id)
            return 'cached'
        finally:
            self.done.release()

    def retire(self, image_id, reason):
        self.retired.append((image_id, reason))
        self.done.release()

    def endpoint(self, policy='public'):
        return glance_events.GlanceEvents(
            glance_events.WarmPolicy.parse(policy), self.warm, self.retire)


class EndpointTest(unittest.TestCase):

    def test_acts_in_the_background_and_logs_a_refusal_once(self):
        recorder = Recorder(refuse={'vhd'})
        events = recorder.endpoint()
        self.addCleanup(events.stop)
        with mock.patch.object(glance_events.LOG, 'warning') as warning:
            for event_type, payload in (
                    ('image.activate', image(id='vhd')),
                    ('image.activate', image(id='a')),
                    ('image.delete', image(id='b', status='deleted'))):
                events.info({}, 'image.host', event_type, payload, {})
            events.stop()
            events.info({}, 'image.host', 'image.update', image(id='vhd'),
                        {})
        self.assertEqual(['a'], recorder.warmed)
        self.assertEqual([('b', image_state.DELETED)], recorder.retired)
        warning.assert_called_once()

    def test_payloads_without_an_image_id_are_ignored(self):
        recorder = Recorder()
        events = recorder.endpoint()
        events.info({}, 'image.host', 'image.activate', {'status': 'x'}, {})
        events.info({}, 'image.host', 'image.activate', 'text', {})
        events.stop()
        self.assertEqual(([], []), (recorder.warmed, recorder.retired))


class ListenerTest(unittest.TestCase):
    """The real notification listener on oslo.messaging's in-memory
    transport, as ``listen`` builds it."""

    def setUp(self):
        self.transport = oslo_messaging.get_notification_transport(
            cfg.CONF, url='fake:/')
        self.addCleanup(self.transport.cleanup)

    def start(self, pool, recorder):
        endpoint = recorder.endpoint()
        listener = listen.notification_listener(
            self.transport, ['notifications'], pool, endpoint)
        listener.start()

        def stop():
            listener.stop()
            listener.wait()
            endpoint.stop()
        self.addCleanup(stop)

    def publish(self, event_type, payload):
        notifier = oslo_messaging.Notifier(
            self.transport, 'image.localhost', driver='messaging',
            topics=['notifications'])
        notifier.info({}, event_type, payload)

    def test_each_event_once_per_pool(self):
        # Two hosts of one backend share a pool; another pool (another
        # backend, or Ceilometer's) gets its own copy.
        host1, host2, other = Recorder(), Recorder(), Recorder()
        host2.done = host1.done  # one count of the backend's actions
        self.start('cinder-rbd-bootcache.ceph', host1)
        self.start('cinder-rbd-bootcache.ceph', host2)
        self.start('cinder-rbd-bootcache.ceph2', other)
        images = ['img-%d' % n for n in range(4)]
        for image_id in images:
            self.publish('image.activate', image(id=image_id))
        for _ in images:
            self.assertTrue(other.done.acquire(timeout=30))
            self.assertTrue(host1.done.acquire(timeout=30))
        # The transport has delivered everything it will deliver.
        self.publish('image.delete', image(id='last', status='deleted'))
        self.assertTrue(other.done.acquire(timeout=30))
        self.assertTrue(host1.done.acquire(timeout=30))
        self.assertEqual(images, sorted(host1.warmed + host2.warmed))
        self.assertEqual(images, sorted(other.warmed))
        self.assertEqual(1, len(host1.retired + host2.retired))


class ExchangeTest(unittest.TestCase):
    """Glance publishes to its own exchange (its control_exchange,
    ``glance``), not to the default one of the listener's bus."""

    def setUp(self):
        # glance-api's bus: the in-memory transport whose default
        # exchange, where its notifier publishes, is "glance".
        conf = cfg.ConfigOpts()
        oslo_messaging.get_notification_transport(
            conf, url='fake:/').cleanup()  # registers the options
        conf.set_override('control_exchange', 'glance')
        self.transport = oslo_messaging.get_notification_transport(
            conf, url='fake:/')
        self.addCleanup(self.transport.cleanup)

    def start(self, exchange, recorder):
        endpoint = recorder.endpoint()
        listener = listen.notification_listener(
            self.transport, ['notifications'], 'pool-%s' % exchange,
            endpoint, exchange=exchange)
        listener.start()

        def stop():
            listener.stop()
            listener.wait()
            endpoint.stop()
        self.addCleanup(stop)

    def test_only_the_configured_exchange_is_heard(self):
        glance, openstack = Recorder(), Recorder()
        self.start('glance', glance)
        self.start('openstack', openstack)
        oslo_messaging.Notifier(
            self.transport, 'image.localhost', driver='messaging',
            topics=['notifications']).info(
                {}, 'image.activate', image(id='img'))
        self.assertTrue(glance.done.acquire(timeout=30))
        self.assertEqual(['img'], glance.warmed)
        # Bound to the same exchange, it would have its own copy by now.
        self.assertFalse(openstack.done.acquire(timeout=1))
        self.assertEqual([], openstack.warmed)

    def test_glance_is_the_default(self):
        conf = cfg.ConfigOpts()
        options.register_listener_opts(conf)
        conf([])
        self.assertEqual('glance', conf.bootcache_listener.exchange)


class PoolNameTest(unittest.TestCase):

    def test_one_pool_per_backend_unless_set(self):
        self.assertEqual('cinder-rbd-bootcache.ceph',
                         listen.pool_name(None, 'ceph'))
        self.assertEqual('mine', listen.pool_name('mine', 'ceph'))
