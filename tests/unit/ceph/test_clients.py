"""SharedClients' bookkeeping, with stand-in clients.

Sharing, the conf change, the blocklist and a retired client in use are
shown on the real cluster (tests/functional/test_rados_clients.py); a
fork, the age limit, a failing ``open_ioctx`` and two connects racing
are hard to make there, so they use stand-ins for the librados client.
"""

import errno
import os
import tempfile
import unittest
from unittest import mock

from cinder import exception
import ddt

from cinder_rbd_bootcache.ceph import clients as rados_clients


class FakeClient:
    """Stands in for a connected rados.Rados."""

    def __init__(self):
        self.state = 'connected'
        self.opened = []

    def open_ioctx(self, pool):
        if self.state != 'connected':
            raise RuntimeError('shut down')
        ioctx = mock.Mock(name='ioctx-%s' % pool)
        self.opened.append(ioctx)
        return ioctx

    def shutdown(self):
        self.state = 'shutdown'


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class SharedClientsTest(unittest.TestCase):

    def setUp(self):
        conf = tempfile.NamedTemporaryFile(delete=False)
        conf.close()
        self.conf = conf.name
        self.addCleanup(os.unlink, self.conf)
        self.clock = Clock()
        self.clients = rados_clients.SharedClients(clock=self.clock,
                                                   max_age=300)
        self.made = []

    def _upstream_connect(self, pool, remote, timeout):
        client = FakeClient()
        self.made.append(client)
        return client, client.open_ioctx(pool)

    def connect(self, pool='volumes', timeout=10):
        return self.clients.connect(self._upstream_connect, ('id',),
                                    'client.cinder', self.conf, pool,
                                    None, timeout)

    def use_once(self, **kwargs):
        client, ioctx = self.connect(**kwargs)
        self.assertTrue(self.clients.disconnect(client, ioctx))
        ioctx.close.assert_called_once_with()
        return client

    def test_one_client_per_timeout(self):
        first = self.use_once()
        self.assertIs(first, self.use_once(pool='images'))
        self.assertIsNot(first, self.use_once(timeout=120))
        self.assertEqual(2, len(self.made))

    def test_not_ours_is_left_to_the_caller(self):
        self.assertFalse(self.clients.disconnect(FakeClient(), mock.Mock()))

    def test_replaced_after_max_age(self):
        first = self.use_once()
        self.clock.now += 299
        self.assertIs(first, self.use_once())
        self.clock.now += 2
        second = self.use_once()
        self.assertIsNot(first, second)
        self.assertEqual('shutdown', first.state)

    def test_not_used_in_a_forked_child(self):
        first = self.use_once()
        with mock.patch.object(rados_clients.os, 'getpid',
                               return_value=os.getpid() + 1):
            second = self.use_once()
        self.assertIsNot(first, second)
        # The parent's client is the parent's to shut down.
        self.assertEqual('connected', first.state)

    def test_a_client_that_cannot_open_a_pool_is_replaced(self):
        first = self.use_once()
        first.state = 'broken'
        second = self.use_once()
        self.assertIsNot(first, second)
        self.assertEqual('shutdown', first.state)

    def test_an_upstream_connect_failure_is_upstreams(self):
        def failing(pool, remote, timeout):
            raise exception.VolumeBackendAPIException(data='no cluster')
        self.assertRaises(exception.VolumeBackendAPIException,
                          self.clients.connect, failing, ('id',), 'c',
                          self.conf, 'volumes', None, 10)
        # Nothing was kept: the next operation connects.
        self.assertEqual('connected', self.use_once().state)
        self.assertEqual(1, len(self.made))

    def test_two_connects_at_once_keep_one(self):
        racing = []

        def connect_while_another_connects(pool, remote, timeout):
            if not racing:
                racing.append(self.connect())
            return self._upstream_connect(pool, remote, timeout)

        late, late_ioctx = self.clients.connect(
            connect_while_another_connects, ('id',), 'c', self.conf,
            'volumes', None, 10)
        early, early_ioctx = racing[0]
        self.assertIsNot(late, early)
        self.clients.disconnect(late, late_ioctx)
        self.assertEqual('shutdown', late.state)  # served one operation
        self.clients.disconnect(early, early_ioctx)
        self.assertIs(early, self.use_once())

    def test_close_all_waits_for_operations(self):
        client, ioctx = self.connect()
        idle = self.use_once(timeout=120)
        self.clients.close_all()
        self.assertEqual('shutdown', idle.state)
        self.assertEqual('connected', client.state)
        self.clients.disconnect(client, ioctx)
        self.assertEqual('shutdown', client.state)


@ddt.ddt
class ClientUnusableTest(unittest.TestCase):

    class Error(Exception):
        def __init__(self, code):
            super().__init__('errno %s' % code)
            self.errno = code

    @ddt.data((errno.ESHUTDOWN, True), (-errno.ESHUTDOWN, True),
              (errno.ETIMEDOUT, True), (errno.ENOTCONN, True),
              (errno.ENOENT, False), (errno.EBUSY, False), (None, False))
    @ddt.unpack
    def test_errno(self, code, unusable):
        self.assertEqual(unusable,
                         rados_clients.client_unusable(self.Error(code)))

    def test_wrapped_by_upstream(self):
        try:
            try:
                raise self.Error(errno.ESHUTDOWN)
            except self.Error:
                raise exception.VolumeBackendAPIException(data='failed')
        except exception.VolumeBackendAPIException as exc:
            self.assertTrue(rados_clients.client_unusable(exc))

    def test_none(self):
        self.assertFalse(rados_clients.client_unusable(None))
