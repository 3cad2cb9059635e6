"""Options are declared once, prefixed, documented and reach the driver."""

import unittest

from cinder_rbd_bootcache import options


class OptionsTest(unittest.TestCase):

    def test_every_option_is_prefixed_and_documented(self):
        for opt in options.BOOTCACHE_OPTS:
            self.assertTrue(opt.name.startswith('bootcache_'), opt.name)
            self.assertGreater(len(opt.help or ''), 40, opt.name)

    def test_generator_gets_them_in_the_backend_section(self):
        (group, opts), = options.list_opts()
        self.assertEqual('backend_defaults', group)
        self.assertEqual(options.BOOTCACHE_OPTS, opts)

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


class SampleConfigTest(unittest.TestCase):

    def test_sample_is_what_the_generator_writes(self):
        """etc/cinder-rbd-bootcache.conf.sample is generated: tox -e genconfig."""
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
        with open(os.path.join(top, 'etc/cinder-rbd-bootcache.conf.sample')) as f:
            self.assertEqual(fresh, f.read(),
                             'sample is stale: run tox -e genconfig')


class ReadmeTableTest(unittest.TestCase):

    def test_readme_has_the_current_options_table(self):
        """README.rst's table comes from options.rst_table(); paste it
        again after changing an option."""
        import os
        readme = os.path.join(os.path.dirname(__file__), '..', '..',
                              'README.rst')
        with open(readme) as f:
            self.assertIn(options.rst_table(), f.read())

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
