"""The backend a ``cinder-rbd-bootcache`` command works on, from cinder.conf.

cinder.conf is read the way cinder-volume reads it (Cinder's own option
registrations, then the backend's section), and the command builds the
same ``BootCacheRBDDriver`` that cinder-volume runs.  So every Ceph
connection (``rbd_user``, ``rbd_ceph_conf``, ``rados_connect_timeout``),
pool and ``bootcache_*`` option is exactly the driver's, and the commands
build the boot cache and import pipeline from the same configuration
(``BootCache.from_configuration``, ``ImagePipeline.from_configuration``)
as the driver does: no logic twice.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any
from typing import Callable
from typing import ContextManager
from typing import Iterator
from typing import Optional

from cinder_rbd_bootcache.bootcache import catalog as catalog_mod
from cinder_rbd_bootcache.bootcache import format_version

DEFAULT_CONFIG = '/etc/cinder/cinder.conf'
OUR_DRIVER = 'cinder_rbd_bootcache.driver.BootCacheRBDDriver'


class ConfigError(Exception):
    """cinder.conf does not describe a backend this command can use."""


def load_config(config_files: list[str]) -> Any:
    """Parse cinder.conf into Cinder's global options, as cinder-volume."""
    from oslo_config import cfg

    from cinder import objects
    objects.register_all()  # before cinder.volume.manager imports them
    from cinder.common import config  # noqa: F401  (registers options)
    from cinder.image import glance  # noqa: F401  ([glance] auth options)
    from cinder.volume import manager  # noqa: F401  (backend options)
    for path in config_files:
        if not os.path.isfile(path):
            raise ConfigError('%s does not exist; pass --config-file with '
                              'the cinder.conf cinder-volume uses' % path)
    cfg.CONF([], project='cinder', default_config_files=config_files)
    return cfg.CONF


def choose_backend(conf: Any, requested: Optional[str]) -> str:
    """The backend section: ``--backend``, or the only enabled one."""
    enabled = [b for b in (conf.enabled_backends or []) if b]
    if requested:
        if enabled and requested not in enabled:
            raise ConfigError('backend %s is not in enabled_backends (%s)'
                              % (requested, ', '.join(enabled)))
        return requested
    if len(enabled) == 1:
        return enabled[0]
    if not enabled:
        raise ConfigError('cinder.conf has no enabled_backends; pass '
                          '--backend with the section of the RBD backend')
    raise ConfigError('cinder.conf enables several backends (%s); pass '
                      '--backend NAME' % ', '.join(enabled))


def glance_image_service() -> Any:
    """Cinder's Glance client, authenticated with cinder.conf's [glance]
    service credentials (there is no user token on the command line)."""
    from cinder.image import glance

    class ServiceCredentialsClient(glance.GlanceClientWrapper):
        def call(self, context: Any, method: str, *args: Any,
                 **kwargs: Any) -> Any:
            kwargs['privileged_user'] = True
            return super().call(context, method, *args, **kwargs)

    return glance.GlanceImageService(client=ServiceCredentialsClient())


class Backend:
    """One backend of cinder.conf, with the driver cinder-volume runs."""

    #: Where ``warm`` gets images from; the functional tests put their
    #: Glance stand-in here, as the harness does for the flow.
    image_service_factory: Callable[[], Any] = staticmethod(
        glance_image_service)

    def __init__(self, config_files: list[str],
                 requested: Optional[str] = None) -> None:
        self.conf = load_config(config_files)
        self.config_files = config_files
        self.name = choose_backend(self.conf, requested)
        self._driver: Any = None
        self._configuration: Any = None
        #: What the commands may do with the pool's cache, by its format.
        self.formats = format_version.FormatGuard()

    @property
    def section(self) -> Any:
        """The backend's options (Cinder's, upstream RBD's and ours) as
        the driver sees them; reading them does not touch Ceph."""
        if self._configuration is None:
            from cinder.volume import configuration
            from cinder.volume.drivers import rbd
            from cinder.volume import manager

            from cinder_rbd_bootcache import options
            config = configuration.Configuration(
                manager.volume_backend_opts, config_group=self.name)
            config.append_config_values(rbd.RBD_OPTS)
            config.append_config_values(options.BOOTCACHE_OPTS)
            self._configuration = config
        return self._configuration

    def settings(self) -> Any:
        """What ``ceph_preflight`` checks, as the driver reads it."""
        from cinder_rbd_bootcache.ceph import preflight as ceph_preflight
        return ceph_preflight.Settings.from_configuration(
            self.section, ceph_preflight.keyring_conf_of(
                self.config_files, (self.name, 'backend_defaults')))

    @property
    def volume_driver(self) -> str:
        return self.section.volume_driver or ''

    def driver(self) -> Any:
        """``BootCacheRBDDriver`` for this backend, set up (connects).

        ``ceph_preflight``'s checks run first, here: a setting that cannot
        work is the command's one-line error, not also a line of the
        driver's log."""
        if self._driver is None:
            from cinder import context

            from cinder_rbd_bootcache.ceph import api as ceph
            from cinder_rbd_bootcache.ceph import preflight as ceph_preflight
            from cinder_rbd_bootcache import driver as driver_mod
            if ceph.rados is not None:
                ceph_preflight.Preflight(ceph.rados, self.settings()).run()
            bootcache = driver_mod.BootCacheRBDDriver(
                configuration=self.section)
            # Checked above: do_setup need not probe the pools again.
            bootcache.ceph_checked = ceph.rados is not None
            bootcache.do_setup(context.get_admin_context())
            self._driver = bootcache
        return self._driver

    @property
    def pool(self) -> str:
        return self.section.bootcache_pool or self.section.rbd_pool

    def connect(self) -> Callable[[str], ContextManager[tuple]]:
        """``connect(pool)`` as the driver connects for imports."""
        from cinder_rbd_bootcache.ceph import api as ceph
        return ceph.connector(self.driver(),
                              self.section.bootcache_import_stall_timeout)

    def boot_cache(self, on_progress: Optional[Callable] = None) -> Any:
        """The driver's boot cache, with its import pipeline."""
        from cinder_rbd_bootcache.bootcache import cache
        from cinder_rbd_bootcache.image_import import (
            pipeline as import_pipeline)
        connect = self.connect()
        # The driver's clone rules: a non-raw image of Glance's rbd store
        # is converted from its snapshot, as a create would.
        pipeline = import_pipeline.ImagePipeline.from_configuration(
            self.section, connect, on_progress,
            store_rules=self.driver()._clone_rules())
        return cache.BootCache.from_configuration(
            self.section, connect, pipeline, formats=self.formats)

    @contextlib.contextmanager
    def catalog(self) -> Iterator[catalog_mod.Catalog]:
        """The cache's catalog on a connection of the driver's.  Raises
        FormatNotKnown, before anything is read or written, when the
        pool's cache is in a format this release does not know."""
        with self.connect()(self.pool) as (_client, ioctx):
            self.formats.require(ioctx, self.pool)
            yield catalog_mod.Catalog(ioctx)

    def format(self) -> format_version.Verdict:
        """The pool's format as it is now (read, never stamped)."""
        with self.connect()(self.pool) as (_client, ioctx):
            return format_version.check(ioctx, self.pool, may_stamp=False)

    def image_service(self) -> Any:
        return type(self).image_service_factory()

    @staticmethod
    def context() -> Any:
        from cinder import context
        return context.get_admin_context()
