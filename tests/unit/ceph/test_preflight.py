"""The pure parts of ``ceph_preflight``: files, keyrings, caps text,
settings.  What needs Ceph (monitors, keys, pools, caps probes) is shown
on the sandbox by tests/functional/test_ceph_preflight.py and
tests/functional/test_cli.py."""

import os
import tempfile
import unittest
from unittest import mock

import ddt

from cinder_rbd_bootcache.ceph import preflight as ceph_preflight
from cinder_rbd_bootcache import errors


def _settings(**changes):
    values = dict(cluster='ceph', conf='/etc/ceph/ceph.conf', user='cinder',
                  timeout=5, pools=(('rbd_pool', 'volumes'),
                                    ('bootcache_pool', 'volumes')))
    values.update(changes)
    return ceph_preflight.Settings(**values)


@ddt.ddt
class PoolsNotCoveredTest(unittest.TestCase):

    @ddt.data(
        # (osd caps, pools, not covered)
        ('profile rbd pool=volumes, profile rbd pool=images',
         ['volumes'], []),
        ('profile rbd pool=images', ['volumes', 'cache'],
         ['volumes', 'cache']),
        ('profile rbd pool=volumes', ['volumes', 'cache'], ['cache']),
        ('allow *', ['volumes', 'cache'], []),
        ('profile rbd', ['volumes'], []),
        ('allow rwx pool volumes', ['volumes'], []),
        ('', ['volumes'], ['volumes']),
    )
    @ddt.unpack
    def test_table(self, caps, pools, expected):
        self.assertEqual(expected,
                         ceph_preflight.pools_not_covered(caps, pools))


@ddt.ddt
class HoldsKeyForTest(unittest.TestCase):

    @ddt.data(
        ('[client.cinder]\n\tkey = AQ==\n', True),
        ('[client.cinder2]\n\tkey = AQ==\n', False),
        ('[client.admin]\n\tkey = AQ==\n[client.cinder]\n\tkey = B\n', True),
        ('', False),
    )
    @ddt.unpack
    def test_table(self, text, expected):
        self.assertEqual(expected,
                         ceph_preflight.holds_key_for(text, 'client.cinder'))


class FileChecksTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_missing_ceph_conf_names_option_and_path(self):
        path = os.path.join(self.tmp.name, 'nope.conf')
        with self.assertRaises(errors.CephFileUnusable) as caught:
            ceph_preflight.check_ceph_conf(_settings(conf=path))
        message = str(caught.exception)
        self.assertTrue(message.startswith(
            'rbd_ceph_conf = %s: no such file. ' % path), message)
        self.assertNotIn('\n', message)

    def test_directory_as_ceph_conf(self):
        with self.assertRaises(errors.CephFileUnusable) as caught:
            ceph_preflight.check_ceph_conf(_settings(conf=self.tmp.name))
        self.assertIn('not a file', str(caught.exception))

    def test_empty_ceph_conf_uses_librados_default_paths(self):
        # Empty rbd_ceph_conf: librados searches its default paths; here
        # the third one (relative to the working directory) exists.
        with open(os.path.join(self.tmp.name, 'ceph.conf'), 'w'):
            pass
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.tmp.name)
        self.assertIn('ceph.conf',
                      ceph_preflight.check_ceph_conf(_settings(conf='')))
        with self.assertRaises(errors.CephFileUnusable) as caught:
            ceph_preflight.check_ceph_conf(_settings(conf='',
                                                     cluster='other'))
        self.assertIn('rbd_ceph_conf = "": not set', str(caught.exception))

    def test_missing_keyring_conf(self):
        path = os.path.join(self.tmp.name, 'client.cinder.keyring')
        with self.assertRaises(errors.CephFileUnusable) as caught:
            ceph_preflight.check_keyring_conf(_settings(keyring_conf=path))
        self.assertTrue(str(caught.exception).startswith(
            'rbd_keyring_conf = %s: no such file. ' % path))
        with open(path, 'w'):
            pass
        self.assertEqual('%s readable' % path,
                         ceph_preflight.check_keyring_conf(
                             _settings(keyring_conf=path)))


class KeyringConfOfTest(unittest.TestCase):
    """``rbd_keyring_conf`` is read from cinder.conf's text: Cinder does
    not register the option."""

    def test_backend_section_then_backend_defaults(self):
        with tempfile.NamedTemporaryFile('w', suffix='.conf') as conf:
            conf.write('[DEFAULT]\nrbd_keyring_conf = /in/default\n'
                       '[backend_defaults]\nrbd_keyring_conf = /shared\n'
                       '[ceph]\nrbd_pool = volumes\n'
                       '[ceph2]\nrbd_keyring_conf = /own\n')
            conf.flush()
            sections = ('ceph', 'backend_defaults')
            self.assertEqual('/shared', ceph_preflight.keyring_conf_of(
                [conf.name], sections))
            self.assertEqual('/own', ceph_preflight.keyring_conf_of(
                [conf.name], ('ceph2', 'backend_defaults')))
            self.assertIsNone(ceph_preflight.keyring_conf_of(
                [conf.name + '.missing'], sections))


class SettingsTest(unittest.TestCase):

    def test_from_configuration(self):
        configuration = mock.Mock(
            rbd_pool='volumes', rbd_cluster_name='ceph',
            rbd_ceph_conf='/etc/ceph/ceph.conf', rbd_user=None,
            rados_connect_timeout=-1)
        configuration.safe_get.return_value = 'cache'
        settings = ceph_preflight.Settings.from_configuration(
            configuration, '')
        self.assertEqual(
            (('rbd_pool', 'volumes'), ('bootcache_pool', 'cache')),
            settings.pools)
        # librados' own default user, as upstream's connection gets it.
        self.assertEqual(('admin', None), (settings.user,
                                           settings.keyring_conf))
