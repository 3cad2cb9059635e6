"""Run Cinder's own ``VolumeManager.create_volume`` in this process.

Nothing of the create path is replaced: the manager builds the real
create_volume taskflow (ExtractVolumeSpecTask, CreateVolumeFromSpecTask with
clone_image, cinder:// clones, the image-volume cache and the download
fallback), the driver talks to the sandbox's Ceph, and the volume ends in the
database as Cinder leaves it.  What stands in for the rest of a cloud:

* sqlite for the database, the ``fake:/`` oslo.messaging transport for RPC
  (nothing here needs a reply), file coordination locks;
* :class:`~bootcache_testkit.harness.image_service.LocalImageService` for
  Glance, returned from ``glance.get_remote_image_service``, the one call the
  flow makes to find its image service.

:class:`CinderProcess` does the once-per-process set-up; each
:class:`BackendUnderTest` is one cinder-volume backend (its own config
section, host and driver class), so upstream's RBDDriver and ours can run
side by side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Any
from typing import Optional
import uuid

from bootcache_testkit.harness import cpu_cost
from bootcache_testkit.harness import runtime

PROJECT_ID = 'a0000000000000000000000000000001'
USER_ID = 'b0000000000000000000000000000001'
INTERNAL_PROJECT_ID = 'c0000000000000000000000000000002'
INTERNAL_USER_ID = 'd0000000000000000000000000000002'
HOST = 'bootcache-harness'

UPSTREAM_DRIVER = 'cinder.volume.drivers.rbd.RBDDriver'
OUR_DRIVER = 'cinder_rbd_bootcache.driver.BootCacheRBDDriver'


class CinderProcess:
    """The once-per-process part: config, RPC, database, coordination."""

    _instance: Optional['CinderProcess'] = None

    def __init__(self, workdir: str, sandbox: Any,
                 concurrency: Optional[str] = None,
                 debug: bool = False) -> None:
        if CinderProcess._instance is not None:
            raise RuntimeError('one CinderProcess per process')
        self.concurrency = runtime.patch(concurrency)
        self.workdir = os.path.abspath(workdir)
        self.sandbox = sandbox
        #: Every BackendUnderTest made in this process.
        self.backends: list = []
        os.makedirs(self.workdir, exist_ok=True)
        self.conversion_dir = os.path.join(self.workdir, 'conversion')
        self._configure(debug)
        self._start_services()
        self.image_service = self._make_image_service()
        self._patch_glance()
        CinderProcess._instance = self

    def _configure(self, debug: bool) -> None:
        from oslo_config import cfg
        from oslo_log import log as logging
        import oslo_messaging

        # ConfKeyManager's fixed_key, registered before the first key
        # manager (the VolumeManager's) registers a bare one of its own:
        # encrypted volumes use Cinder's fixed-key manager here.
        from cinder.keymgr import conf_key_mgr  # noqa: F401
        from cinder import objects
        objects.register_all()
        conf = cfg.CONF
        # The fake transport's options are registered by oslo.messaging only
        # when a transport is built; cinder.rpc reads them before that.
        with contextlib.suppress(cfg.DuplicateOptError):
            conf.register_opts(oslo_messaging.transport._transport_opts)
        logging.register_options(conf)
        conf([], project='cinder', default_config_files=[])
        log_file = os.path.join(self.workdir, 'cinder.log')
        conf.set_override('log_file', log_file)
        conf.set_override('debug', debug)
        logging.setup(conf, 'cinder')
        overrides = {
            'host': HOST,
            'transport_url': 'fake:/',
            'state_path': self.workdir,
            'image_conversion_dir': self.conversion_dir,
            'cinder_internal_tenant_project_id': INTERNAL_PROJECT_ID,
            'cinder_internal_tenant_user_id': INTERNAL_USER_ID,
            # Glance's cinder store: let the flow look for cinder:// images.
            'allowed_direct_url_schemes': ['cinder'],
            'quota_volumes': -1, 'quota_gigabytes': -1,
            'quota_snapshots': -1, 'per_volume_size_limit': -1,
        }
        for name, value in overrides.items():
            conf.set_override(name, value)
        conf.set_override('connection', 'sqlite:///%s' % os.path.join(
            self.workdir, 'cinder.sqlite'), group='database')
        conf.set_override('backend_url', 'file://%s' % os.path.join(
            self.workdir, 'coordination'), group='coordination')
        conf.set_override('lock_path', os.path.join(self.workdir, 'locks'),
                          group='oslo_concurrency')

    def _start_services(self) -> None:
        from oslo_config import cfg

        from cinder import coordination
        from cinder.db import migration
        from cinder import privsep
        from cinder import rpc

        rpc.init(cfg.CONF)
        migration.db_sync()
        coordination.COORDINATOR.start()
        # We run as root: qemu-img inspection needs no privsep daemon.
        privsep.sys_admin_pctxt.set_client_mode(False)

    def _make_image_service(self) -> Any:
        from bootcache_testkit.harness import image_service
        return image_service.LocalImageService(
            os.path.join(self.workdir, 'images'), owner=PROJECT_ID,
            rados_client_factory=self.sandbox.admin_client)

    def _patch_glance(self) -> None:
        # The one seam: where the flow asks for Glance, it gets ours.
        from cinder.image import glance
        glance.get_remote_image_service = (
            lambda context, image_href: (self.image_service, image_href))
        glance.get_default_image_service = lambda: self.image_service

    def join_finishers(self) -> None:
        """Wait until every backend's boot cache has finished the entries
        its creates populated (they are finished after the create
        returns)."""
        for backend in self.backends:
            backend.join_finishers()

    def shutdown(self) -> None:
        self.join_finishers()
        from cinder import coordination
        from cinder import rpc
        with contextlib.suppress(Exception):
            coordination.COORDINATOR.stop()
        with contextlib.suppress(Exception):
            rpc.cleanup()
        CinderProcess._instance = None

    @staticmethod
    def context(project_id: str = PROJECT_ID, user_id: str = USER_ID,
                is_admin: bool = False) -> Any:
        from cinder import context
        return context.RequestContext(user_id=user_id, project_id=project_id,
                                      is_admin=is_admin)


@dataclasses.dataclass
class CreateResult:
    volume: Any
    seconds: float
    error: Optional[BaseException] = None
    #: CPU seconds of this whole process (every thread: the flow's,
    #: eventlet's thread pool, librados') during the create.
    cpu_seconds: float = 0.0
    #: ... and of the children it ran and of the sandbox's OSDs
    #: (``cpu_cost``).
    cpu: cpu_cost.CpuSeconds = cpu_cost.CpuSeconds()

    @property
    def ok(self) -> bool:
        return self.error is None and self.volume.status == 'available'


class BackendUnderTest:
    """One cinder-volume backend, its manager and its driver."""

    def __init__(self, process: CinderProcess, name: str,
                 driver: str = OUR_DRIVER, pool: str = 'volumes',
                 **options: Any) -> None:
        from cinder import context
        from cinder import objects
        from cinder.volume import manager as volume_manager

        self.process = process
        self.name = name
        self.pool = pool
        self.host = '%s@%s' % (HOST, name)
        self._register_options(driver, options)
        admin = context.get_admin_context()
        service = objects.Service(
            admin, host=self.host, binary='cinder-volume',
            topic='cinder-volume',
            rpc_current_version=volume_manager.VolumeManager.RPC_API_VERSION,
            object_current_version=objects.base.OBJ_VERSIONS.get_current())
        service.create()
        self._service_id = service.id
        self._start(driver)
        process.backends.append(self)

    def _start(self, driver: str) -> None:
        """cinder-volume's start: a manager and its driver, set up."""
        from cinder.volume import manager as volume_manager
        self.manager = volume_manager.VolumeManager(
            host=self.host, service_name=self.name)
        self.manager.init_host(service_id=self._service_id)
        if not self.manager.driver.initialized:
            raise RuntimeError('driver %s did not initialise; see %s' % (
                driver, os.path.join(self.process.workdir, 'cinder.log')))
        self.manager.stats['pools'] = {}
        self.driver = self.manager.driver

    def restart(self, driver: str) -> None:
        """Restart this cinder-volume with ``volume_driver = driver`` in
        its section, the rest of it unchanged: same host, same pools,
        same volumes (e.g. back to upstream's RBDDriver)."""
        from oslo_config import cfg
        self.join_finishers()
        cfg.CONF.set_override('volume_driver', driver, group=self.name)
        self._start(driver)

    def join_finishers(self) -> None:
        """Wait until this backend's boot cache has finished the entries
        its creates populated; nothing to wait for with upstream's
        driver."""
        finishers = getattr(self.driver, 'bootcache_finishers', None)
        if finishers is not None:
            finishers.join()

    def _register_options(self, driver: str, options: dict) -> None:
        from oslo_config import cfg

        from cinder.volume import driver as volume_driver
        from cinder.volume.drivers import rbd
        from cinder.volume import manager as volume_manager

        from cinder_rbd_bootcache import options as bootcache_options

        conf = cfg.CONF
        for opts in (volume_driver.volume_opts, volume_driver.image_opts,
                     rbd.RBD_OPTS, volume_manager.volume_backend_opts,
                     bootcache_options.BOOTCACHE_OPTS):
            conf.register_opts(opts, group=self.name)
        sandbox = self.process.sandbox
        values = {
            'volume_driver': driver,
            'volume_backend_name': self.name,
            'rbd_pool': self.pool,
            'rbd_ceph_conf': sandbox.conf_path,
            'rbd_user': sandbox.client_name,
            # Quick failure instead of librados' 5 min default.
            'rados_connect_timeout': 10,
        }
        values.update(options)
        for key, value in values.items():
            conf.set_override(key, value, group=self.name)

    # -- volumes --------------------------------------------------------
    def new_volume(self, size_gb: int, context: Any = None,
                   **fields: Any) -> Any:
        """A volume row as the API and scheduler would leave it."""
        from cinder import objects
        from cinder.volume import volume_types
        context = context or self.process.context()
        volume = objects.Volume(
            context=context, size=size_gb,
            host='%s#%s' % (self.host, self.name),
            availability_zone='nova', status='creating',
            attach_status='detached', project_id=context.project_id,
            user_id=context.user_id,
            volume_type_id=(fields.pop('volume_type_id', None) or
                            volume_types.get_default_volume_type()['id']),
            display_name=fields.pop('display_name',
                                    'harness-%s' % uuid.uuid4().hex[:8]),
            **fields)
        volume.create()
        return volume

    def create_from_image(self, image_id: str, size_gb: int,
                          context: Any = None,
                          **fields: Any) -> CreateResult:
        """Run the real create_volume flow for a volume from ``image_id``
        (``fields``: e.g. an encrypted type's ``volume_type_id`` and the
        volume's ``encryption_key_id``)."""
        from cinder import objects
        context = context or self.process.context()
        volume = self.new_volume(size_gb, context, **fields)
        return self._create(context, volume, objects.RequestSpec(
            image_id=image_id, volume_id=volume.id))

    def create_from_volume(self, source: Any, size_gb: Optional[int] = None,
                           context: Any = None) -> CreateResult:
        """Run the real create_volume flow for a clone of ``source``
        (``cinder create --source-volid``)."""
        from cinder import objects
        context = context or self.process.context()
        volume = self.new_volume(size_gb or source.size, context,
                                 source_volid=source.id)
        return self._create(context, volume, objects.RequestSpec(
            source_volid=source.id, volume_id=volume.id))

    def create_from_snapshot(self, snapshot: Any,
                             size_gb: Optional[int] = None,
                             context: Any = None) -> CreateResult:
        """Run the real create_volume flow for a volume from a Cinder
        snapshot (``cinder create --snapshot-id``)."""
        from cinder import objects
        context = context or self.process.context()
        volume = self.new_volume(size_gb or snapshot.volume_size, context,
                                 snapshot_id=snapshot.id)
        return self._create(context, volume, objects.RequestSpec(
            snapshot_id=snapshot.id, volume_id=volume.id))

    def extend(self, volume: Any, new_size_gb: int) -> None:
        """``cinder extend``: the manager's extend_volume, as the API
        leaves the volume for it (status extending, quota reserved; the
        harness's quotas are unlimited, so no reservation)."""
        volume.refresh()
        volume.status = 'extending'
        volume.save()
        self.manager.extend_volume(self.process.context(), volume,
                                   new_size_gb, [])
        volume.refresh()

    def _create(self, context: Any, volume: Any, spec: Any) -> CreateResult:
        """The manager's create_volume for ``volume``, timed."""
        error = None
        with cpu_cost.Meter(self.process.sandbox) as meter:
            started = time.monotonic()
            try:
                self.manager.create_volume(context, volume,
                                           request_spec=spec,
                                           allow_reschedule=False)
            except Exception as exc:  # the flow already set status 'error'
                error = exc
            seconds = time.monotonic() - started
        volume.refresh()
        return CreateResult(volume, seconds, error, meter.spent.process,
                            meter.spent)

    def backup_device(self, volume: Any) -> Any:
        """The device a backup of ``volume``, attached, reads: what the
        backup manager's synchronous ``get_backup_device`` call returns.

        For an in-use volume Cinder's driver base class makes a temporary
        clone (``use_quota`` False); the caller deletes it.
        """
        from cinder import objects
        context = self.process.context()
        volume.refresh()
        volume.previous_status = volume.status
        volume.status = 'backing-up'
        volume.save()
        backup = objects.Backup(
            context=context, volume_id=volume.id, status='creating',
            user_id=context.user_id, project_id=context.project_id,
            size=volume.size, display_name='harness-backup',
            # Any backup driver but Ceph's: for Ceph-to-Ceph backups the
            # RBD driver hands out the volume itself, no temporary clone.
            service='cinder.backup.drivers.posix.PosixBackupDriver')
        backup.create()
        try:
            device = self.manager.get_backup_device(context, backup,
                                                    want_objects=True)
        finally:
            volume.refresh()
            volume.status = volume.previous_status
            volume.save()
            backup.destroy()
        return device.volume

    def create_snapshot(self, volume: Any) -> Any:
        """A Cinder snapshot of ``volume``, through the manager."""
        from cinder import objects
        context = self.process.context()
        snapshot = objects.Snapshot(
            context=context, volume_id=volume.id, status='creating',
            volume_size=volume.size, project_id=context.project_id,
            user_id=context.user_id, volume_type_id=volume.volume_type_id,
            display_name='harness-snapshot')
        snapshot.create()
        self.manager.create_snapshot(context, snapshot)
        snapshot.refresh()
        return snapshot

    def delete_snapshot(self, snapshot: Any) -> None:
        from cinder import context
        snapshot.refresh()
        self.manager.delete_snapshot(context.get_admin_context(), snapshot)

    def delete(self, volume: Any) -> None:
        from cinder import context
        volume.refresh()
        self.manager.delete_volume(context.get_admin_context(), volume)

    def volumes(self) -> list:
        """Every volume of this backend, any project, newest first."""
        from cinder import context
        from cinder import objects
        admin = context.get_admin_context()
        found = objects.VolumeList.get_all(
            admin, filters={'host': self.host + '#' + self.name})
        return sorted(found, key=lambda v: v.created_at, reverse=True)

    def delete_all(self) -> None:
        """Delete every volume, clones before their sources."""
        for volume in self.volumes():
            self.delete(volume)

    @staticmethod
    def rbd_name(volume: Any) -> str:
        return volume.name  # volume_name_template, as the driver uses it
