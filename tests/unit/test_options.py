"""Options are declared once, prefixed, documented and reach the driver."""

import unittest

from cinder_rbd_bootcache import options


class OptionsTest(unittest.TestCase):

    def test_every_option_is_prefixed_and_documented(self):
        for opt in options.BOOTCACHE_OPTS:
            self.assertTrue(opt.name.startswith('bootcache_'), opt.name)
            self.assertGreater(len(opt.help or ''), 40, opt.name)

    def test_listener_options_are_documented(self):
        for opt in options.LISTENER_OPTS:
            self.assertGreater(len(opt.help or ''), 40, opt.name)

    def test_generator_gets_them_in_the_backend_and_listener_sections(self):
        self.assertEqual(
            [('backend_defaults', options.BOOTCACHE_OPTS),
             ('bootcache_listener', options.LISTENER_OPTS)],
            options.list_opts())

    def test_driver_lists_upstreams_and_ours(self):
        from cinder.volume.drivers import rbd

        from cinder_rbd_bootcache.driver import BootCacheRBDDriver
        names = {o.name for o in BootCacheRBDDriver.get_driver_options()}
        self.assertLessEqual({o.name for o in rbd.RBD_OPTS}, names)
        self.assertLessEqual({o.name for o in options.BOOTCACHE_OPTS}, names)

    def test_driver_is_an_rbd_driver_with_its_own_version(self):
        from cinder.volume.drivers import rbd

        from cinder_rbd_bootcache.driver import BootCacheRBDDriver
        self.assertTrue(issubclass(BootCacheRBDDriver, rbd.RBDDriver))
        self.assertNotEqual(rbd.RBDDriver.VERSION, BootCacheRBDDriver.VERSION)

    def test_driver_version_is_the_packages(self):
        """The VERSION Cinder reports (get-pools, the service's log) is
        the version in setup.cfg, the one the release notes name."""
        import configparser
        import pathlib

        from cinder_rbd_bootcache.driver import BootCacheRBDDriver
        config = configparser.ConfigParser()
        config.read(pathlib.Path(__file__).resolve().parents[2] /
                    'setup.cfg')
        self.assertEqual(config['metadata']['version'],
                         BootCacheRBDDriver.VERSION)


class SampleConfigTest(unittest.TestCase):

    def test_sample_is_what_the_generator_writes(self):
        """etc/cinder-rbd-bootcache.conf.sample is generated (tox -e
        genconfig)."""
        import os
        import tempfile

        from oslo_config import generator

        top = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, 'sample')
            generator.main(['--config-file', os.path.join(
                top, 'etc/oslo-config-generator/cinder-rbd-bootcache.conf'),
                '--output-file', out])
            with open(out) as f:
                fresh = f.read()
        sample = os.path.join(top, 'etc/cinder-rbd-bootcache.conf.sample')
        with open(sample) as f:
            self.assertEqual(fresh, f.read(),
                             'sample is stale: run tox -e genconfig')


class ValueTest(unittest.TestCase):

    def test_value_of_a_configuration_without_our_options_is_the_default(self):
        # A configuration built for upstream's RBDDriver, as Cinder's own
        # unit tests make it: our options are absent, not an error.
        from unittest import mock

        from cinder.volume import configuration
        conf = mock.Mock(spec=configuration.Configuration)
        self.assertIs(True, options.value(conf, 'bootcache_enabled'))
        self.assertEqual([], options.value(
            conf, 'bootcache_allowed_clone_pools'))

    def test_value_set_in_the_configuration_wins(self):
        import types
        conf = types.SimpleNamespace(bootcache_import_writes_in_flight=3)
        self.assertEqual(3, options.value(
            conf, 'bootcache_import_writes_in_flight'))
