"""The volume driver Cinder loads: ``BootCacheRBDDriver``.

Deliberately thin: it subclasses upstream's ``RBDDriver`` (cinder 26 to 29;
their differences are handled in ``compat``) and delegates every decision
to the modules of this package.  Whatever it does not override behaves
exactly as upstream.
"""

from __future__ import annotations

import functools
from typing import Any
from typing import Optional

from cinder import interface
from cinder.volume.drivers import rbd as upstream_rbd
from cinder.volume import volume_utils
from oslo_config import cfg
from oslo_utils import units

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.bootcache import cloning
from cinder_rbd_bootcache.bootcache import format_version
from cinder_rbd_bootcache.bootcache import manageable
from cinder_rbd_bootcache.bootcache import notifications
from cinder_rbd_bootcache.bootcache import population
from cinder_rbd_bootcache.bootcache import stats as bootcache_stats
from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache import clone_policy
from cinder_rbd_bootcache import create_from_image
from cinder_rbd_bootcache.encryption import from_cache
from cinder_rbd_bootcache.encryption import volumes as encrypted_volumes
from cinder_rbd_bootcache.encryption import writer as luks_writer
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import image_state
from cinder_rbd_bootcache.glance import rbd_store
from cinder_rbd_bootcache.image_import import into_volume
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline
from cinder_rbd_bootcache import options
from cinder_rbd_bootcache.upstream import clone_chains
from cinder_rbd_bootcache.upstream import flow_hooks
from cinder_rbd_bootcache.upstream import glance_service_auth
from cinder_rbd_bootcache.upstream import rados_setup

CONF = cfg.CONF


@interface.volumedriver
class BootCacheRBDDriver(upstream_rbd.RBDDriver):
    """RBD driver with fast, safe creation of volumes from images.

    ``VERSION`` is the package's version (setup.cfg); what each version
    changed is in the release notes (``releasenotes/``, ``tox -e
    releasenotes``).
    """

    VERSION = '0.7.0'
    CI_WIKI_NAME = 'cinder-rbd-bootcache'

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(options.BOOTCACHE_OPTS)
        #: Encrypted volumes the flow hook is making from the boot cache:
        #: ``create_volume`` leaves their container to
        #: ``copy_image_to_encrypted_volume``, which makes it and writes
        #: the data (``LuksWriter.write_from_entry``).
        self._luks_from_cache: set[str] = set()
        #: True when whoever made this driver has run ``ceph.preflight``'s
        #: checks for its settings already (the command does, to report a
        #: failure as its own one line); ``do_setup`` then skips them.
        self.ceph_checked = False

    def do_setup(self, context: Any) -> None:
        """Upstream's set-up; then the flow hook through which encrypted
        volumes reach the boot cache without a download
        (``flow_hooks``), and the ``[glance]`` service user keeping its
        Keystone token between creates (``glance_service_auth``).

        First, the checks of ``ceph.preflight`` (the backend's own
        cluster; ``rados_setup.check_ceph_settings``): a setting that
        cannot work is one logged line naming the option, and the driver
        stays uninitialised with that error (``VolumeManager.init_host``),
        without waiting out upstream's connection retries.
        """
        rados_setup.check_ceph_settings(self)
        super().do_setup(context)
        flow_hooks.install()
        glance_service_auth.install()

    @classmethod
    def get_driver_options(cls) -> list:
        return super().get_driver_options() + options.BOOTCACHE_OPTS

    def _option(self, name: str) -> Any:
        return options.value(self.configuration, name)

    # -- connections -------------------------------------------------------
    def _connect_to_rados(self, pool: Optional[str] = None,
                          remote: Optional[dict] = None,
                          timeout: Optional[int] = None) -> tuple:
        """Upstream's (client, ioctx), the client shared by this
        process's operations (``rados_setup.connect_shared``) unless
        ``bootcache_share_rados_clients`` is off."""
        if not self._option('bootcache_share_rados_clients'):
            return super()._connect_to_rados(pool, remote, timeout)
        return rados_setup.connect_shared(self, super()._connect_to_rados,
                                          pool, remote, timeout)

    _disconnect_from_rados = staticmethod(rados_setup.disconnect)

    # -- create from image ---------------------------------------------------
    def clone_image(self, context: Any, volume: Any,
                    image_location: Optional[tuple], image_meta: dict,
                    image_service: Any) -> tuple[dict, bool]:
        """Make the volume from the image, in the cheapest way that is safe
        (``create_from_image``: a Glance rbd location, a cinder://
        image-volume, the boot cache, our own import)."""
        return create_from_image.clone_image(
            self, super().clone_image, context, volume, image_location,
            image_meta, image_service)

    def create_volume(self, volume: Any) -> Any:
        """Upstream's, except for a front-end luks volume: its empty LUKS
        container is made straight in Ceph (``from_cache.create_volume``,
        ``LuksWriter.create_container``), not in a local file that is then
        ``rbd import``-ed."""
        return from_cache.create_volume(self, super().create_volume, volume)

    def copy_image_to_volume(self, context: Any, volume: Any,
                             image_service: Any, image_id: str,
                             disable_sparse: bool = False) -> None:
        """Cinder's download path: the image is already on local disk, and
        the pipeline converts it straight into the volume's RBD image
        (``into_volume.copy_image_to_volume``).  Re-imaging and formats
        the pipeline does not handle stay upstream's."""
        into_volume.copy_image_to_volume(
            self, super().copy_image_to_volume, context, volume,
            image_service, image_id, disable_sparse=disable_sparse)

    def copy_image_to_encrypted_volume(self, context: Any, volume: Any,
                                       image_service: Any, image_id: str,
                                       disable_sparse: bool = False) -> None:
        """An encrypted volume's data, from the image's boot-cache entry
        (``from_cache.copy_image``), written into the volume's LUKS
        container: the one ``create_volume`` made, or, for a volume the
        flow hook made from the cache without a download, one it makes
        first.  What ``_why_not_encrypted_from_cache`` names a reason for
        stays upstream's."""
        from_cache.copy_image(
            self, super().copy_image_to_encrypted_volume, context, volume,
            image_service, image_id, disable_sparse=disable_sparse)

    def encrypted_volume_from_cache(self, context: Any, volume: Any,
                                    image_meta: dict) -> bool:
        """Whether ``copy_image_to_encrypted_volume`` makes this encrypted
        volume from the boot cache, so that Cinder's flow need not
        download the image first (``flow_hooks``)."""
        return from_cache.accepts(self, context, volume, image_meta)

    def encrypted_volume_done(self, volume: Any) -> None:
        """The flow hook is done with ``volume`` (made or failed)."""
        self._luks_from_cache.discard(volume.id)

    def _why_not_encrypted_from_cache(self, encryption: dict,
                                      facts: ImageFacts,
                                      disable_sparse: bool = False
                                      ) -> Optional[str]:
        """Why this encrypted volume stays upstream's; None when it is
        written from the boot cache."""
        return (encrypted_volumes.why_not_from_cache(
            encryption, self._option('bootcache_enabled'), disable_sparse)
            or clone_policy.why_not_import(
                facts, image_cache_in_use=False, boot_cache_enabled=True,
                verify_signatures=CONF.verify_glance_signatures)
            or cloning.bypass_reason(self))

    # -- the parts the create paths use --------------------------------------
    def _volume_target(self, volume: Any) -> import_pipeline.Target:
        return import_pipeline.Target(self.configuration.rbd_pool,
                                      volume.name, volume.size * units.Gi)

    def _luks_writer(self, pipeline: Optional[import_pipeline.ImagePipeline]
                     = None) -> luks_writer.LuksWriter:
        return luks_writer.LuksWriter(
            pipeline or self._import_pipeline(), self._connector(),
            self.configuration.rbd_pool)

    _tell_user = staticmethod(errors.tell_user)

    def _connector(self) -> import_pipeline.Connect:
        return ceph.connector(self,
                              self._option('bootcache_import_stall_timeout'))

    def _boot_cache(self, pipeline: Optional[import_pipeline.ImagePipeline]
                    = None, volume: Any = None) -> cache.BootCache:
        """The backend's cache; ``volume``: the create it serves, whose
        host its hit and miss notifications name."""
        return cache.BootCache.from_configuration(
            self.configuration, self._connector(), pipeline,
            self.bootcache_finishers, self.bootcache_formats,
            self._cache_notifier.for_host(volume and volume.host))

    @functools.cached_property
    def _cache_notifier(self) -> notifications.CacheNotifier:
        """Cinder's ``image_volume_cache.*`` notifications; what no
        volume asked for (an eviction) names the host and pool of this
        backend's volumes (RBDDriver reports no pools: Cinder names the
        pool after ``volume_backend_name``)."""
        backend_name = self.configuration.safe_get('volume_backend_name')
        return notifications.CacheNotifier(volume_utils.append_host(
            self.host, backend_name or 'RBD'))

    @functools.cached_property
    def bootcache_finishers(self) -> population.Finishers:
        """Where this driver's populations finish their entries after
        their volume was handed out; ``join()`` waits for them."""
        return population.Finishers()

    @functools.cached_property
    def bootcache_formats(self) -> format_version.FormatGuard:
        """What this driver knows of its pool's format: read at first
        use, again at each stats refresh (``format_version``)."""
        return format_version.FormatGuard()

    def _update_volume_stats(self) -> None:
        """Upstream's stats, plus the boot cache's figures; refreshing
        them is also when the cache applies its limits."""
        super()._update_volume_stats()
        if self._option('bootcache_enabled'):
            self._stats.update(bootcache_stats.volume_stats(
                self._boot_cache, image_state.ask_glance))

    def _import_pipeline(self) -> import_pipeline.ImagePipeline:
        # The clone rules also say which rbd-store snapshots of non-raw
        # images qemu-img may convert from.
        return import_pipeline.ImagePipeline.from_configuration(
            self.configuration, self._connector(),
            store_rules=self._clone_rules())

    def _image_cache_in_use(self) -> bool:
        return bool(self.configuration.safe_get('image_volume_cache_enabled')
                    and CONF.cinder_internal_tenant_project_id
                    and CONF.cinder_internal_tenant_user_id)

    # -- volume from volume (image-volume cache, cinder:// images) ------------
    def create_cloned_volume(self, volume: Any, src_vref: Any) -> Any:
        """Upstream's clone, after ``clone_chains.prepare_source`` applied
        ``clone_policy.clone_method``'s row: at the clone-depth limit the
        source is flattened once, so the new volume and every later clone
        of that source are depth-1 clones, never flattened."""
        clone_chains.prepare_source(self, volume, src_vref)
        return super().create_cloned_volume(volume, src_vref)

    def _delete_volume(self, volume: Any, client: Any) -> None:
        """Upstream's delete, plus release of the parent's clone snapshot
        that upstream's fast path leaves (``clone_chains``)."""
        parent, parent_snap = clone_chains.parent_of(self, volume, client)
        super()._delete_volume(volume, client)
        clone_chains.release_parent_snapshot(self, volume, client, parent,
                                             parent_snap)

    # -- manage existing: boot-cache entries are not volumes -----------------
    def manage_existing_get_size(self, volume: Any,
                                 existing_ref: dict) -> int:
        manageable.refuse_entry(existing_ref)
        return super().manage_existing_get_size(volume, existing_ref)

    def manage_existing(self, volume: Any, existing_ref: dict) -> Any:
        manageable.refuse_entry(existing_ref)
        return super().manage_existing(volume, existing_ref)

    def get_manageable_volumes(self, cinder_volumes: list, marker: Any,
                               limit: int, offset: int, sort_keys: list,
                               sort_dirs: list) -> list[dict]:
        """Upstream's list; boot-cache entries are listed as not safe."""
        return manageable.mark_entries(super().get_manageable_volumes(
            cinder_volumes, marker, limit, offset, sort_keys, sort_dirs))

    # -- Glance rbd-store locations ------------------------------------------
    def _is_cloneable(self, image_location: str, image_meta: dict) -> bool:
        """Upstream's rules, our pool rules and a look at the snapshot's
        content (``rbd_store.CloneRules``).  Raises ImageFormatMismatch (or
        ImageUnsafe) when the snapshot of an image declared raw holds
        another format, as the download path does."""
        return self._clone_rules().is_cloneable(image_location, image_meta)

    def _clone_rules(self) -> rbd_store.CloneRules:
        return rbd_store.CloneRules(
            fsid=self._get_fsid, volume_pools=[self.configuration.rbd_pool],
            allowed_pools=self._option('bootcache_allowed_clone_pools'),
            connect=self._connector(), binding=self.rbd)

    def glance_clone_source(self, image_location: Optional[tuple],
                            image_meta: dict) -> Optional[str]:
        """The rbd:// location ``clone_image``'s first path (upstream's
        ``clone_image``) clones for this image, or None when a create goes
        on to the boot cache; for ``cinder-rbd-bootcache warm`` (an image
        whose creates clone Glance's snapshot needs no entry)."""
        return rbd_store.clone_source(image_location, image_meta,
                                      self._is_cloneable)
