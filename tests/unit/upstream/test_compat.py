"""Each branch of ``compat`` is the one its docstring names for the
installed Cinder release, and works with that release.

The unit suite runs once per release (tox ``py311-cinder26`` ...
``py311-cinder29``), so every branch is taken, here, on the release it is
for.  ``RELEASE`` is read from the installed distribution only to pick the
expected answer; compat itself decides by what Cinder has.
"""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import textwrap
import types
import unittest
from unittest import mock

import ddt

from cinder_rbd_bootcache.glance import locations
from cinder_rbd_bootcache.glance import rbd_store
from cinder_rbd_bootcache.upstream import compat

RELEASE = int(importlib.metadata.version('cinder').split('.')[0])
FSID = '6c1d3c1e-0d4c-4a0e-9a43-2f3c4d5e6f70'
URL = 'rbd://%s/images/3f6b1b0a-5c2e-4f7e-9d0b-1a2b3c4d5e6f/snap' % FSID


class SupportedReleaseTest(unittest.TestCase):

    def test_installed_cinder_is_a_supported_release(self):
        self.assertIn(RELEASE, (26, 27, 28, 29))


class TpoolWrapTest(unittest.TestCase):
    """29 has ``cinder.utils.tpool_wrap``; 26-28 wrap like it, in compat."""

    def test_upstream_function_exists_from_29_only(self):
        self.assertEqual(RELEASE >= 29,
                         compat._upstream_tpool_wrap() is not None)

    def test_without_eventlet_the_object_itself(self):
        # The unit tests run without monkey patching, like cinder-volume
        # 29 under native threads and our command-line tool.
        obj = object()
        self.assertFalse(compat.eventlet_patched())
        self.assertIs(obj, compat.tpool_wrap(obj))

    def test_under_eventlet_a_tpool_proxy(self):
        from eventlet import tpool
        if RELEASE >= 29:
            # 29 asks cinder.monkey_patch whether eventlet is on.
            patched = mock.patch('cinder.monkey_patch.MONKEY_PATCHED', True)
        else:
            patched = mock.patch.object(compat, 'eventlet_patched',
                                        return_value=True)
        with patched:
            wrapped = compat.tpool_wrap([3, 1, 2])
        self.assertIsInstance(wrapped, tpool.Proxy)
        self.assertEqual(3, len(wrapped))

    def test_our_modules_never_call_cinder_utils_tpool_wrap(self):
        # 26-28 have no such function: every call goes through compat.
        import pathlib
        package = pathlib.Path(compat.__file__).parents[1]
        offenders = [str(path) for path in package.rglob('*.py')
                     if path.name != 'compat.py' and
                     'utils.tpool_wrap' in path.read_text().replace(
                         'compat.tpool_wrap', '')]
        self.assertEqual([], offenders)


class ConcurrencyTest(unittest.TestCase):
    """29: eventlet or native threads; 26-28: eventlet only."""

    def test_modes_of_the_release(self):
        expected = (('threading', 'eventlet') if RELEASE >= 29
                    else ('eventlet',))
        self.assertEqual(expected, compat.concurrency_modes())
        self.assertEqual(RELEASE >= 29, compat.NATIVE_THREADS)

    def test_native_threads_flag_matches_the_module(self):
        try:
            import cinder.monkey_patch  # noqa: F401
            has_module = True
        except ImportError:
            has_module = False
        self.assertEqual(has_module, compat.NATIVE_THREADS)

    @unittest.skipIf(compat.NATIVE_THREADS, 'the release has native threads')
    def test_native_threads_refused_before_29(self):
        with self.assertRaisesRegex(RuntimeError, 'only under eventlet'):
            compat.patch_concurrency('threading')

    def test_harness_default_is_the_releases_first_mode(self):
        from bootcache_testkit.harness import runtime
        with mock.patch.dict('os.environ', clear=False) as env:
            env.pop(runtime.ENV, None)
            self.assertEqual(compat.concurrency_modes()[0],
                             runtime.mode_from_env())

    def test_patching_follows_the_release(self):
        # The real patch cannot run in this process (it would stay); the
        # calls it makes are checked instead.
        if compat.NATIVE_THREADS:
            with mock.patch('cinder.monkey_patch.patch') as patch, \
                    mock.patch.dict('os.environ'):
                import os
                compat.patch_concurrency('threading')
                self.assertEqual(
                    '1', os.environ['OS_CINDER_DISABLE_EVENTLET_PATCHING'])
            patch.assert_called_once_with(backend='threading')
        else:
            fake_threading = types.SimpleNamespace(
                current_thread=types.SimpleNamespace(
                    __globals__={}))
            with mock.patch('eventlet.monkey_patch') as monkey_patch, \
                    mock.patch.dict(sys.modules, {
                        '__original_module_threading': fake_threading}):
                compat.patch_concurrency('eventlet')
            monkey_patch.assert_called_once_with()
            import threading
            self.assertIs(threading._active,
                          fake_threading.current_thread.__globals__[
                              '_active'])


_WHERE_THE_HUB_IS = textwrap.dedent('''
    from cinder_rbd_bootcache.upstream import compat
    import sys
    compat.patch_concurrency(sys.argv[1])
    import threading
    found = {'main': compat.off_the_hub_thread()}
    started = threading.Thread(target=lambda: found.__setitem__(
        'started thread', compat.off_the_hub_thread()))
    started.start()
    started.join()
    found['pool'] = compat.tpool_wrap(compat.off_the_hub_thread)()
    native = compat.native_threading().Thread(
        target=lambda: found.__setitem__('native thread',
                                         compat.off_the_hub_thread()))
    native.start()
    native.join()
    print(repr(found))
''')


@ddt.ddt
class OffTheHubTest(unittest.TestCase):
    """Where green primitives cannot be shared, as cinder-volume of each
    release patches; in a child process, since patching stays."""

    @ddt.data('eventlet', 'threading')
    def test_only_other_native_threads_under_eventlet(self, mode):
        if mode not in compat.concurrency_modes():
            self.skipTest('cinder-volume of this release has no %s mode'
                          % mode)
        out = subprocess.run(
            [sys.executable, '-W', 'ignore', '-c', _WHERE_THE_HUB_IS, mode],
            check=True, capture_output=True, text=True).stdout
        eventlet = mode == 'eventlet'
        self.assertEqual({'main': False, 'started thread': False,
                          'pool': eventlet, 'native thread': eventlet},
                         ast.literal_eval(out.strip().splitlines()[-1]))


class FsidTest(unittest.TestCase):
    """26-27 decode librados' fsid in ``_get_fsid``; 28+ do not."""

    def _upstream_fsid(self, answer: object) -> object:
        from cinder.volume.drivers import rbd
        client = mock.MagicMock()
        client.__enter__.return_value.cluster.get_fsid.return_value = answer
        with mock.patch.object(rbd, 'RADOSClient', return_value=client):
            return rbd.RBDDriver._get_fsid(mock.Mock())

    def test_bytes_from_librados(self):
        upstream = self._upstream_fsid(FSID.encode())
        self.assertEqual(str if RELEASE < 28 else bytes, type(upstream))
        self.assertEqual(FSID, compat.fsid(upstream))

    def test_text_from_librados(self):
        self.assertEqual(FSID, compat.fsid(self._upstream_fsid(FSID)))

    def test_is_cloneable_compares_text_on_every_release(self):
        driver = _driver()
        with mock.patch.object(driver, '_get_fsid',
                               return_value=FSID.encode()), \
                mock.patch.object(rbd_store.CloneRules, 'snapshot_is_raw',
                                  return_value=True) as content:
            self.assertTrue(driver._is_cloneable(
                URL, {'id': 'i', 'disk_format': 'raw'}))
        # The fsid matched: the snapshot is opened and looked at.
        content.assert_called_once()


def _driver():
    """Our driver, built as Cinder's VolumeManager builds it: the
    configuration by keyword (29 accepts nothing else)."""
    from cinder.volume import configuration
    from cinder.volume.drivers import rbd
    from oslo_config import cfg

    from cinder_rbd_bootcache import driver
    from cinder_rbd_bootcache import options
    conf = configuration.Configuration(rbd.RBD_OPTS,
                                       config_group='compat_test')
    conf.append_config_values(options.BOOTCACHE_OPTS)
    cfg.CONF.set_override('bootcache_allowed_clone_pools', ['images'],
                          group='compat_test')
    cfg.CONF.set_override('rbd_pool', 'volumes', group='compat_test')
    return driver.BootCacheRBDDriver(configuration=conf, host='h@compat',
                                     rados=mock.MagicMock(),
                                     rbd=mock.MagicMock())


class DriverConstructionTest(unittest.TestCase):
    """29's ``BaseVD.__init__`` takes ``configuration`` by keyword only."""

    def test_built_with_configuration_keyword(self):
        driver = _driver()
        self.assertEqual('compat_test', driver.configuration.config_group)
        self.assertEqual('volumes', driver.configuration.rbd_pool)

    def test_positional_configuration_refused_from_29(self):
        import inspect

        from cinder.volume import driver
        parameter = inspect.signature(
            driver.BaseVD.__init__).parameters.get('configuration')
        self.assertEqual(RELEASE >= 29, parameter is not None and
                         parameter.kind is parameter.KEYWORD_ONLY)


class GlanceLocationTest(unittest.TestCase):
    """27+ ask Glance's location API first and return (None, locations);
    26 returns (direct_url, locations) from the image.  Ours reads both."""

    def test_release_shape_and_our_urls(self):
        from cinder.image import glance

        def call(context, method, image_id, **kwargs):
            if method == 'get_image_locations':
                return [{'url': URL, 'metadata': {}}]
            return types.SimpleNamespace(direct_url=URL,
                                         locations=[{'url': URL,
                                                     'metadata': {}}],
                                         status='active')

        context = mock.Mock(is_admin=True)
        with mock.patch.object(glance.GlanceClientWrapper, 'call',
                               side_effect=call):
            found = glance.GlanceImageService().get_location(context, 'i')
        self.assertEqual(None if RELEASE >= 27 else URL, found[0])
        self.assertEqual([URL], locations.urls_of(found))


class ServiceBackendTest(unittest.TestCase):
    """oslo.service's threading backend: chosen on 29 only, the release
    that requires ``oslo.service[threading]``."""

    def test_threading_backend_usable_from_29(self):
        import importlib.util
        self.assertEqual(RELEASE >= 29,
                         importlib.util.find_spec('cotyledon') is not None)

    def test_selected_on_29_only(self):
        from oslo_service import backend as service_backend
        with mock.patch.object(service_backend, 'init_backend') as init:
            compat.select_threading_service_backend()
        if RELEASE >= 29:
            init.assert_called_once_with(
                service_backend.BackendType.THREADING)
        else:
            init.assert_not_called()


class ReimageTest(unittest.TestCase):
    """29 re-images in place; 26-28 delete and import again."""

    def test_outcome_of_the_release(self):
        self.assertEqual(RELEASE >= 29, compat.reimage_keeps_volume())


class QemuImgLimitsTest(unittest.TestCase):
    """26-28: the constant ``image_utils.QEMU_IMG_LIMITS``; 29: the
    ``image_introspection_*`` options."""

    def test_the_release_s_own_limits(self):
        from cinder.image import image_utils
        from oslo_config import cfg
        limits = compat.qemu_img_limits()
        if RELEASE <= 28:
            self.assertIs(image_utils.QEMU_IMG_LIMITS, limits)
        else:
            self.assertEqual(
                (cfg.CONF.image_introspection_cpu_limit,
                 cfg.CONF.image_introspection_address_space_limit
                 * 1024 ** 3),
                (limits.cpu_time, limits.address_space))
