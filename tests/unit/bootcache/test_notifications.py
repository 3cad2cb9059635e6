"""Cinder's ``image_volume_cache.*`` notifications of the boot cache:
event types, publisher, payload and gate, through oslo.messaging's real
``Notifier`` with its in-memory ``test`` driver on the ``fake://``
transport (tests/functional/test_notifications.py sends them from real
creates)."""

import unittest
from unittest import mock

from cinder import context as cinder_context
from cinder import rpc
import ddt
from oslo_config import cfg
import oslo_messaging
from oslo_messaging.notify import _impl_test

from cinder_rbd_bootcache.bootcache import notifications

HOST = 'node1@ceph#RBD'


@ddt.ddt
class CacheNotifierTest(unittest.TestCase):

    def setUp(self):
        super().setUp()
        cfg.CONF.import_opt('host', 'cinder.common.config')
        # Options are read only from a parsed configuration (no files).
        if cfg.CONF._namespace is None:
            cfg.CONF([], project='cinder', default_config_files=[],
                     default_config_dirs=[])
        transport = oslo_messaging.get_notification_transport(
            cfg.CONF, url='fake:/')
        self.override(driver=['test'], group='oslo_messaging_notifications')
        self.override(host='node1')
        serializer = rpc.RequestContextSerializer(
            oslo_messaging.JsonPayloadSerializer())
        notifier = oslo_messaging.Notifier(transport, serializer=serializer)
        patcher = mock.patch.multiple(rpc, TRANSPORT=transport,
                                      NOTIFIER=notifier)
        patcher.start()
        self.addCleanup(patcher.stop)
        _impl_test.reset()
        self.addCleanup(_impl_test.reset)
        self.context = cinder_context.RequestContext(
            user_id='u', project_id='p')

    def override(self, group=None, **options):
        for name, value in options.items():
            cfg.CONF.set_override(name, value, group=group)
            self.addCleanup(cfg.CONF.clear_override, name, group=group)

    @staticmethod
    def sent():
        return [(m['event_type'], m['publisher_id'], m['payload'],
                 priority) for _ctxt, m, priority, _retry
                in _impl_test.NOTIFICATIONS]

    @ddt.data(('hit', 'image_volume_cache.hit'),
              ('miss', 'image_volume_cache.miss'),
              ('evict', 'image_volume_cache.evict'))
    @ddt.unpack
    def test_sends_what_cinders_cache_sends(self, method, event_type):
        getattr(notifications.CacheNotifier(HOST), method)(
            self.context, 'img-1')
        self.assertEqual(
            [(event_type, 'volume.node1',
              {'image_id': 'img-1', 'host': HOST}, 'INFO')], self.sent())
        self.assertEqual('p',
                         _impl_test.NOTIFICATIONS[0][0]['project_id'])

    def test_without_a_context_sends_an_admin_one(self):
        notifications.CacheNotifier(HOST).evict(None, 'img-1')
        ctxt = _impl_test.NOTIFICATIONS[0][0]
        self.assertTrue(ctxt['is_admin'])

    @ddt.data(['noop'], [])
    def test_nothing_when_notifications_are_off(self, drivers):
        self.override(driver=drivers, group='oslo_messaging_notifications')
        notifications.CacheNotifier(HOST).hit(self.context, 'img-1')
        self.assertEqual([], self.sent())

    def test_nothing_without_cinders_rpc(self):
        # The cinder-rbd-bootcache command never initialises it.
        with mock.patch.multiple(rpc, TRANSPORT=None, NOTIFIER=None):
            notifications.CacheNotifier(HOST).miss(self.context, 'img-1')
        self.assertEqual([], self.sent())

    def test_nothing_from_the_silent_notifier(self):
        notifications.SILENT.for_host(HOST).hit(self.context, 'img-1')
        self.assertEqual([], self.sent())

    @ddt.data((HOST, 'other@ceph#RBD', 'other@ceph#RBD'),
              (HOST, None, HOST))
    @ddt.unpack
    def test_for_host_names_the_volumes_host(self, backend, volume, named):
        notifications.CacheNotifier(backend).for_host(volume).hit(
            self.context, 'img-1')
        self.assertEqual(named, self.sent()[0][2]['host'])

    def test_a_failed_send_is_logged_not_raised(self):
        with mock.patch.object(rpc.NOTIFIER, 'prepare',
                               side_effect=RuntimeError('bus down')), \
                mock.patch.object(notifications.LOG, 'warning') as warning:
            notifications.CacheNotifier(HOST).hit(self.context, 'img-1')
        warning.assert_called_once()
        self.assertEqual([], self.sent())
