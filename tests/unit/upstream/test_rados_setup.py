"""``check_ceph_settings`` runs ``ceph.preflight`` once per driver.

``Preflight`` is replaced here: what it checks runs against the real
sandbox in tests/functional/test_ceph_preflight.py; this is only whether
it runs.
"""

from __future__ import annotations

import types
import unittest
from unittest import mock

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.upstream import rados_setup


def _driver(checked: bool) -> types.SimpleNamespace:
    configuration = types.SimpleNamespace(
        config_group='ceph', bootcache_pool='', rbd_pool='volumes',
        rbd_ceph_conf='/etc/ceph/ceph.conf', rbd_user='cinder',
        rbd_cluster_name='ceph', rados_connect_timeout=5)
    return types.SimpleNamespace(configuration=configuration,
                                 rados=ceph.rados,
                                 keyring_file='/etc/ceph/keyring',
                                 _active_backend_id=None,
                                 ceph_checked=checked)


@unittest.skipIf(ceph.rados is None, 'needs the rados binding')
class CheckCephSettingsTest(unittest.TestCase):

    def _runs(self, driver: types.SimpleNamespace) -> bool:
        with mock.patch.object(rados_setup.preflight, 'Preflight') as made, \
                mock.patch.object(rados_setup.preflight.Settings,
                                  'from_configuration'):
            rados_setup.check_ceph_settings(driver)
        return made.return_value.run.called

    def test_a_driver_nobody_checked_is_checked(self) -> None:
        self.assertTrue(self._runs(_driver(checked=False)))

    def test_a_driver_its_maker_checked_is_not_checked_again(self) -> None:
        self.assertFalse(self._runs(_driver(checked=True)))
