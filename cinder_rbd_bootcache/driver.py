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
from typing import Union

from cinder import exception
from cinder.image import image_utils
from cinder import interface
from cinder.message import api as message_api
from cinder.message import message_field
from cinder.volume.drivers import rbd as upstream_rbd
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units

from cinder_rbd_bootcache.bootcache import cache
from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.bootcache import population
from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.ceph import clients as rados_clients
from cinder_rbd_bootcache.ceph import preflight as ceph_preflight
from cinder_rbd_bootcache import clone_policy
from cinder_rbd_bootcache.encryption import volumes as encrypted_volumes
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import formats as image_format
from cinder_rbd_bootcache.glance import image_volumes
from cinder_rbd_bootcache.glance import locations
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline
from cinder_rbd_bootcache import options
from cinder_rbd_bootcache.upstream import compat
from cinder_rbd_bootcache.upstream import flow_hooks
from cinder_rbd_bootcache.upstream import glance_service_auth

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


@interface.volumedriver
class BootCacheRBDDriver(upstream_rbd.RBDDriver):
    """RBD driver with fast, safe creation of volumes from images.

    ``VERSION`` is the package's version (setup.cfg); what each version
    changed is in the release notes (``releasenotes/``, ``tox -e
    releasenotes``).
    """

    VERSION = '0.6.0'
    CI_WIKI_NAME = 'cinder-rbd-bootcache'

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(options.BOOTCACHE_OPTS)
        #: Encrypted volumes the flow hook is making from the boot cache:
        #: ``create_volume`` leaves their container to
        #: ``copy_image_to_encrypted_volume``, which makes it and writes
        #: the data (``encrypted_volumes.make_from_entry``).
        self._luks_from_cache: set[str] = set()

    def do_setup(self, context: Any) -> None:
        """Upstream's set-up; then the flow hook through which encrypted
        volumes reach the boot cache without a download
        (``flow_hooks``), and the ``[glance]`` service user keeping its
        Keystone token between creates (``glance_service_auth``).

        First, the checks of ``ceph_preflight`` (the backend's own
        cluster): a setting that cannot work is one logged line naming
        the option, and the driver stays uninitialised with that error
        (``VolumeManager.init_host``), without waiting out upstream's
        connection retries.
        """
        self._check_ceph_settings()
        super().do_setup(context)
        flow_hooks.install()
        glance_service_auth.install()

    def _check_ceph_settings(self) -> None:
        """Run ``ceph_preflight``'s checks; log and raise the first
        failure.  Only with Ceph's bindings and a configuration that
        carries our options (a driver built with stand-ins for either, as
        in upstream's unit tests, keeps upstream's set-up: see
        ``options.value``), and only for the primary cluster: a
        failed-over backend's settings come from its replication_device.
        """
        try:
            group = self.configuration.config_group
            self.configuration.bootcache_pool
        except AttributeError:
            return
        if ceph.rados is None or self.rados is not ceph.rados or (
                self._active_backend_id not in (None, 'default')):
            return
        keyring_conf = self.keyring_file or ceph_preflight.keyring_conf_of(
            CONF.config_file or [],
            (group or 'DEFAULT', 'backend_defaults'))
        settings = ceph_preflight.Settings.from_configuration(
            self.configuration, keyring_conf)
        try:
            ceph_preflight.Preflight(self.rados, settings).run()
        except errors.CephMisconfigured as exc:
            LOG.error('Backend %(backend)s cannot use Ceph: %(why)s',
                      {'backend': group,
                       'why': exc})
            raise

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
        process's operations (``rados_clients``) unless
        ``bootcache_share_rados_clients`` is off."""
        if not self._option('bootcache_share_rados_clients'):
            return super()._connect_to_rados(pool, remote, timeout)
        name, conf, user, _secret_uuid = self._get_config_tuple(remote)
        if timeout is None:
            timeout = self.configuration.rados_connect_timeout
        return rados_clients.CLIENTS.connect(
            # self.rados is the binding; in upstream's unit tests each
            # test's stand-in, so that no test gets another test's client.
            super()._connect_to_rados, (self.rados, name, conf, user),
            'client.%s of cluster %s' % (user, name), conf,
            pool or self.configuration.rbd_pool, remote, timeout)

    @staticmethod
    def _disconnect_from_rados(client: Any, ioctx: Any) -> None:
        """Close the ioctx of a shared client; upstream's for any other."""
        if not rados_clients.CLIENTS.disconnect(client, ioctx):
            upstream_rbd.RBDDriver._disconnect_from_rados(client, ioctx)

    # -- create from image ---------------------------------------------------
    def clone_image(self, context: Any, volume: Any,
                    image_location: Optional[tuple], image_meta: dict,
                    image_service: Any) -> tuple[dict, bool]:
        """Make the volume from the image, in the cheapest way that is safe.

        In order: a Glance rbd location (upstream's clone, behind our pool
        rules), a cinder:// image-volume, the boot cache (populated once on
        a miss), our own import.  Cinder's flow calls this before it
        downloads anything, so it is the one place a download can go
        straight into Ceph instead of through ``image_conversion_dir``.
        """
        try:
            model_update, cloned = super().clone_image(
                context, volume, image_location, image_meta, image_service)
        except (errors.ImageFormatMismatch, errors.ImageUnsafe) as exc:
            # _is_cloneable found that Glance's snapshot is not raw.
            with excutils.save_and_reraise_exception():
                self._tell_user(context, volume, exc, image_meta.get('id'))
        if cloned:
            return model_update, cloned
        facts = ImageFacts.from_glance(image_meta)
        if volume.encryption_key_id:
            # The flow never asks for encrypted volumes: they need its LUKS
            # conversion.  Our paths say no rather than hand out plain data;
            # the location clone above is upstream's, unchanged.
            return {}, False
        urls = locations.urls_of(image_location)
        if 'cinder' in CONF.allowed_direct_url_schemes:
            model_update = self._clone_image_volume(context, volume,
                                                    facts, urls)
            if model_update is not None:
                return model_update, True
        reason = clone_policy.why_not_import(
            facts, image_cache_in_use=self._image_cache_in_use(),
            boot_cache_enabled=self._option('bootcache_enabled'),
            verify_signatures=CONF.verify_glance_signatures)
        if reason:
            LOG.info('Leaving image %(image)s for volume %(volume)s to '
                     'Cinder\'s flow: %(why)s.',
                     {'image': facts.id, 'volume': volume.id, 'why': reason})
            return {}, False
        pipeline = self._import_pipeline()

        def make_volume() -> tuple[import_pipeline.Target, dict]:
            # A population fills the volume along with the entry.
            made = self.create_volume(volume) or {}
            return self._volume_target(volume), made

        try:
            pipeline.refuse_if_full(self.configuration.rbd_pool,
                                    facts.id)
            found = self._boot_cache_entry(context, image_service,
                                           facts, pipeline, make_volume)
        except Exception as exc:
            with excutils.save_and_reraise_exception():
                self._tell_user(context, volume, exc, facts.id)
        if isinstance(found, cache.Entry):
            return self._clone_entry(context, volume, image_service,
                                     facts, pipeline, found), True
        if isinstance(found, population.VolumeFilled):
            model_update = found.model_update
        else:
            model_update = self.create_volume(volume) or {}
            self._import(context, volume, image_service, facts,
                         pipeline)
        model_update['provider_location'] = None
        return model_update, True

    def create_volume(self, volume: Any) -> Any:
        """Upstream's, except for a front-end luks volume: its empty LUKS
        container is made straight in Ceph (see
        ``encrypted_volumes.create_container``), not in a local file that
        is then ``rbd import``-ed."""
        if not volume.encryption_key_id:
            return super().create_volume(volume)
        if volume.id in self._luks_from_cache:
            # copy_image_to_encrypted_volume makes it, data and all.
            return {}
        context = volume.obj_context
        encryption = encrypted_volumes.encryption_of(context, volume)
        if encrypted_volumes.why_not(encryption):
            return super().create_volume(volume)
        key = encrypted_volumes.luks_key(context, encryption)
        pipeline = self._import_pipeline()
        target = self._volume_target(volume)
        encrypted_volumes.create_container(
            target, key, pipeline.settings, self._connector(),
            remove=lambda: pipeline.remove_targets([target]),
            check_full=lambda: encrypted_volumes.refuse_if_full(
                self._connector(), target.pool, volume.id))
        return {}

    def _volume_target(self, volume: Any) -> import_pipeline.Target:
        return import_pipeline.Target(self.configuration.rbd_pool,
                                      volume.name, volume.size * units.Gi)

    def _clone_image_volume(self, context: Any, volume: Any,
                            facts: ImageFacts,
                            urls: list[str]) -> Optional[dict]:
        """Clone the image's cinder:// image-volume; None if there is none
        we may use, or its clone failed (then the cache or an import
        makes the volume, as upstream's flow falls back to a download)."""
        source = image_volumes.find(context, volume, facts, urls)
        if source is None:
            return None
        LOG.info('Volume %(volume)s: cloning image-volume %(source)s of '
                 'image %(image)s.', {'volume': volume.id,
                                      'source': source.id,
                                      'image': facts.id})
        try:
            return self.create_cloned_volume(volume, source) or {}
        except exception.CinderException:
            LOG.warning('Volume %(volume)s: could not clone image-volume '
                        '%(source)s of image %(image)s; making it another '
                        'way.', {'volume': volume.id, 'source': source.id,
                                 'image': facts.id}, exc_info=True)
            return None

    def _clone_entry(self, context: Any, volume: Any, image_service: Any,
                     facts: ImageFacts,
                     pipeline: import_pipeline.ImagePipeline,
                     entry: cache.Entry) -> dict:
        """Clone the entry's golden snapshot, resized to the volume.  An
        entry evicted between lookup and clone is looked up (or populated)
        once more: the clone then finds no image or snapshot
        (ImageNotFound) or, with clone format 1, a snapshot the eviction
        has just unprotected (InvalidArgument)."""
        try:
            model_update = self._clone(volume, entry.pool, entry.name,
                                       catalog.SNAPSHOT)
        except (self.rbd.ImageNotFound, self.rbd.InvalidArgument):
            LOG.info('Boot-cache entry %(entry)s went away before volume '
                     '%(volume)s was cloned from it; trying once more.',
                     {'entry': entry.name, 'volume': volume.id})
            entry = self._boot_cache_entry(context, image_service,
                                           facts, pipeline)
            if entry is None:
                raise
            model_update = self._clone(volume, entry.pool, entry.name,
                                       catalog.SNAPSHOT)
        model_update['provider_location'] = None
        self._resize(volume)
        return model_update

    def copy_image_to_volume(self, context: Any, volume: Any,
                             image_service: Any, image_id: str,
                             disable_sparse: bool = False) -> None:
        """Cinder's download path: the image is already on local disk.

        The pipeline converts it straight into the volume's RBD image (no
        second raw file, no ``rbd import``).  Re-imaging an existing volume
        (``disable_sparse``) and formats the pipeline does not handle stay
        upstream's; so does ``copy_image_to_encrypted_volume``, whose LUKS
        conversion needs the raw file upstream makes.
        """
        facts = ImageFacts.from_glance(image_service.show(context, image_id))
        if disable_sparse or not image_format.supported(facts):
            return super().copy_image_to_volume(
                context, volume, image_service, image_id,
                disable_sparse=disable_sparse)
        local_path = image_utils.TemporaryImages.for_image_service(
            image_service).get(context, image_id)
        self._import(context, volume, image_service, facts,
                     self._import_pipeline(), local_path=local_path,
                     # On this path the flow tells the user about these.
                     reported_by_flow=(
                         exception.ImageTooBig,
                         exception.ImageSignatureVerificationException))

    def copy_image_to_encrypted_volume(self, context: Any, volume: Any,
                                       image_service: Any, image_id: str,
                                       disable_sparse: bool = False) -> None:
        """An encrypted volume's data, from the image's boot-cache entry.

        The flow has downloaded the image and ``create_volume`` (upstream's)
        has made the volume's empty LUKS container; ``encrypted_volumes``
        writes the entry into it (populating the entry from the download on
        a miss).  Providers other than luks, back-end encryption,
        re-imaging, a disabled cache and formats the pipeline does not
        handle stay upstream's (see ``encrypted_volumes.why_not``).
        """
        facts = ImageFacts.from_glance(image_service.show(context, image_id))
        encryption = encrypted_volumes.encryption_of(context, volume)
        reason = self._why_not_encrypted_from_cache(encryption, facts,
                                                    disable_sparse)
        if reason:
            LOG.info('Encrypted volume %(volume)s from image %(image)s: '
                     'upstream\'s conversion (%(why)s).',
                     {'volume': volume.id, 'image': facts.id, 'why': reason})
            return super().copy_image_to_encrypted_volume(
                context, volume, image_service, image_id,
                disable_sparse=disable_sparse)
        local_path = image_utils.TemporaryImages.for_image_service(
            image_service).get(context, image_id)
        pipeline = self._import_pipeline()
        target = self._volume_target(volume)
        try:
            key = encrypted_volumes.luks_key(context, encryption)
            pipeline.refuse_if_full(target.pool, facts.id)
            entry = self._boot_cache(pipeline).get_or_populate(
                context, image_service, facts, local_path=local_path)
            try:
                if volume.id in self._luks_from_cache:
                    encrypted_volumes.make_from_entry(
                        entry.pool, entry.name, catalog.SNAPSHOT, target,
                        key, facts.id, pipeline.settings, self._connector(),
                        remove=lambda: pipeline.remove_targets([target]))
                else:
                    encrypted_volumes.fill(
                        entry.pool, entry.name, catalog.SNAPSHOT, target,
                        key, facts.id, pipeline.settings, self._connector())
            except errors.ImportWriteFailed:
                with excutils.save_and_reraise_exception():
                    # A full pool says so rather than "qemu-img failed".
                    pipeline.refuse_if_full(target.pool, facts.id)
        except cache.NotCacheable as exc:
            LOG.info('Encrypted volume %(volume)s: not caching image '
                     '%(image)s (%(why)s); upstream\'s conversion.',
                     {'volume': volume.id, 'image': facts.id, 'why': exc})
            return super().copy_image_to_encrypted_volume(
                context, volume, image_service, image_id)
        except Exception as exc:
            with excutils.save_and_reraise_exception():
                # No LUKS header (nor half-written data) stays behind.
                pipeline.remove_targets([target])
                self._tell_user(context, volume, exc, facts.id)

    def encrypted_volume_from_cache(self, context: Any, volume: Any,
                                    image_meta: dict) -> bool:
        """Whether ``copy_image_to_encrypted_volume`` makes this encrypted
        volume from the boot cache, so that Cinder's flow need not
        download the image first (``flow_hooks``)."""
        reason = self._why_not_encrypted_from_cache(
            encrypted_volumes.encryption_of(context, volume),
            ImageFacts.from_glance(image_meta))
        if reason:
            LOG.info('Encrypted volume %(volume)s: Cinder\'s flow downloads '
                     'image %(image)s (%(why)s).',
                     {'volume': volume.id, 'image': image_meta.get('id'),
                      'why': reason})
            return False
        self._luks_from_cache.add(volume.id)
        return True

    def encrypted_volume_done(self, volume: Any) -> None:
        """The flow hook is done with ``volume`` (made or failed)."""
        self._luks_from_cache.discard(volume.id)

    def _why_not_encrypted_from_cache(self, encryption: dict,
                                      facts: ImageFacts,
                                      disable_sparse: bool = False
                                      ) -> Optional[str]:
        reason = encrypted_volumes.why_not(encryption)
        if reason:
            return reason
        if disable_sparse:
            return 're-imaging keeps upstream\'s path'
        if not self._option('bootcache_enabled'):
            return 'bootcache_enabled is off'
        return clone_policy.why_not_import(
            facts, image_cache_in_use=False, boot_cache_enabled=True,
            verify_signatures=CONF.verify_glance_signatures)

    def _import(self, context: Any, volume: Any, image_service: Any,
                facts: ImageFacts, pipeline: import_pipeline.ImagePipeline,
                local_path: Optional[str] = None,
                reported_by_flow: tuple = ()) -> None:
        """Fill the volume's RBD image; on failure it is gone and the
        user has a message (``cinder message-list``)."""
        try:
            pipeline.import_image(context, image_service, facts,
                                  [self._volume_target(volume)], local_path)
        except Exception as exc:
            with excutils.save_and_reraise_exception():
                if not isinstance(exc, reported_by_flow):
                    self._tell_user(context, volume, exc, facts.id)

    @staticmethod
    def _tell_user(context: Any, volume: Any, exc: Exception,
                   image_id: Optional[str]) -> None:
        """Tell the user (``cinder message-list``) why the volume failed,
        in the words of the one Cinder message detail that is true for
        ``exc`` (``errors.USER_MESSAGE_DETAILS``), and log the precise
        reason, which no such detail holds, with the volume and image."""
        detail = errors.user_message_detail(exc)
        LOG.error('Volume %(volume)s from image %(image)s failed: '
                  '%(error)s: %(reason)s  The user is told: "%(told)s"',
                  {'volume': volume.id, 'image': image_id,
                   'error': type(exc).__name__, 'reason': exc,
                   'told': detail[1]})
        message_api.API().create(
            context, message_field.Action.COPY_IMAGE_TO_VOLUME,
            resource_uuid=volume.id, detail=detail)

    def _connector(self) -> import_pipeline.Connect:
        return ceph.connector(self,
                              self._option('bootcache_import_stall_timeout'))

    def _boot_cache(self, pipeline: Optional[import_pipeline.ImagePipeline]
                    = None) -> cache.BootCache:
        return cache.BootCache.from_configuration(
            self.configuration, self._connector(), pipeline,
            self.bootcache_finishers)

    @functools.cached_property
    def bootcache_finishers(self) -> population.Finishers:
        """Where this driver's populations finish their entries after
        their volume was handed out; ``join()`` waits for them."""
        return population.Finishers()

    def _boot_cache_entry(self, context: Any, image_service: Any,
                          facts: ImageFacts,
                          pipeline: import_pipeline.ImagePipeline,
                          make_volume: Optional[population.MakeVolume]
                          = None
                          ) -> Union[cache.Entry, population.VolumeFilled,
                                     None]:
        """The entry to clone; or, when this create populated the entry,
        ``VolumeFilled`` (``make_volume`` made the volume and it holds
        the image); None when the cache is off or cannot hold the
        image."""
        if not self._option('bootcache_enabled'):
            return None
        try:
            return self._boot_cache(pipeline).get_or_populate(
                context, image_service, facts,
                make_volume=make_volume)
        except cache.NotCacheable as exc:
            LOG.info('Not caching image %(image)s: %(why)s.',
                     {'image': facts.id, 'why': exc})
            return None

    def _update_volume_stats(self) -> None:
        """Upstream's stats, plus the boot cache's figures; refreshing
        them is also when the cache applies its limits."""
        super()._update_volume_stats()
        if not self._option('bootcache_enabled'):
            return
        try:
            # Lists and removes RBD images: off eventlet's hub.
            figures = compat.tpool_wrap(
                self._boot_cache()).maintain().figures
        except Exception:
            LOG.exception('Could not refresh the boot cache\'s figures or '
                          'apply its limits; the next stats refresh tries '
                          'again.')
            return
        self._stats.update({'bootcache_%s' % key: value
                            for key, value in figures.items()})

    def _import_pipeline(self) -> import_pipeline.ImagePipeline:
        return import_pipeline.ImagePipeline.from_configuration(
            self.configuration, self._connector())

    def _image_cache_in_use(self) -> bool:
        return bool(self.configuration.safe_get('image_volume_cache_enabled')
                    and CONF.cinder_internal_tenant_project_id
                    and CONF.cinder_internal_tenant_user_id)

    # -- volume from volume (image-volume cache, cinder:// images) ------------
    def create_cloned_volume(self, volume: Any, src_vref: Any) -> Any:
        """Upstream's clone, after ``clone_policy.clone_method`` decided.

        Only the "source at the limit" row differs from upstream: the source
        is flattened first (and its own parent's clone snapshot released),
        so the new volume and every later clone of that source are depth-1
        clones, never flattened.  Temporary volumes and sources with
        snapshots keep upstream's rows (see ``clone_method``).
        """
        limit = self.configuration.rbd_max_clone_depth
        if limit > 0:
            with upstream_rbd.RADOSClient(self) as client:
                depth = self._get_clone_depth(client, src_vref.name)
                temporary = not volume.use_quota
                has_snapshots = (depth >= limit and not temporary and
                                 self._has_snapshots(client, src_vref.name))
                method = clone_policy.clone_method(
                    limit, depth, temporary=temporary,
                    source_has_snapshots=has_snapshots)
                LOG.info('Volume %(volume)s from volume %(src)s (clone depth '
                         '%(depth)d, rbd_max_clone_depth %(limit)d, '
                         'temporary %(temporary)s, source has snapshots '
                         '%(snaps)s): %(method)s.',
                         {'volume': volume.id, 'src': src_vref.id,
                          'depth': depth, 'limit': limit,
                          'temporary': temporary, 'snaps': has_snapshots,
                          'method': method})
                if method == clone_policy.FLATTEN_SOURCE_THEN_CLONE:
                    self._flatten_source(client, src_vref.name)
        return super().create_cloned_volume(volume, src_vref)

    def _has_snapshots(self, client: Any, name: str) -> bool:
        with upstream_rbd.RBDVolumeProxy(self, name, ioctx=client.ioctx,
                                         client=client,
                                         read_only=True) as image:
            return bool(list(image.list_snaps()))

    def _flatten_source(self, client: Any, name: str) -> None:
        with upstream_rbd.RBDVolumeProxy(self, name, ioctx=client.ioctx,
                                         client=client,
                                         read_only=True) as image:
            _pool, parent, parent_snap = self._get_clone_info(image, name)
        self._flatten_volume(name, client)
        if parent:
            # Each clone has its own <clone>.clone_snap on its parent;
            # flattened (and without snapshots of its own, which would
            # keep the link), the source no longer needs it.
            self._delete_clone_parent_refs(client, parent, parent_snap)

    # -- manage existing -----------------------------------------------------
    def manage_existing_get_size(self, volume: Any,
                                 existing_ref: dict) -> int:
        self._refuse_boot_cache_image(existing_ref)
        return super().manage_existing_get_size(volume, existing_ref)

    def manage_existing(self, volume: Any, existing_ref: dict) -> Any:
        self._refuse_boot_cache_image(existing_ref)
        return super().manage_existing(volume, existing_ref)

    @staticmethod
    def _refuse_boot_cache_image(existing_ref: dict) -> None:
        reason = catalog.why_not_manageable(existing_ref.get('source-name'))
        if reason:
            raise exception.ManageExistingInvalidReference(
                existing_ref=existing_ref, reason=reason)

    def get_manageable_volumes(self, cinder_volumes: list, marker: Any,
                               limit: int, offset: int, sort_keys: list,
                               sort_dirs: list) -> list[dict]:
        """Upstream's list; boot-cache entries are listed as not safe."""
        found = super().get_manageable_volumes(
            cinder_volumes, marker, limit, offset, sort_keys, sort_dirs)
        for item in found:
            reason = catalog.why_not_manageable(
                item['reference'].get('source-name'))
            if reason and item.get('safe_to_manage'):
                item['safe_to_manage'] = False
                item['reason_not_safe'] = reason
        return found

    # -- location rules ------------------------------------------------------
    def _volume_pools(self) -> list[str]:
        return [self.configuration.rbd_pool]

    def _is_cloneable(self, image_location: str, image_meta: dict) -> bool:
        """Upstream's rules, the pool rules of ``locations``, and a look
        at the snapshot's content.

        ``locations.why_not_cloneable`` applies upstream's rules (a
        well-formed location, this cluster's fsid, a raw image; the same
        in cinder 26 to 29) and ours.  Upstream then opens the snapshot
        only to see that it can; ours opens it once, off eventlet's hub,
        and reads its first blocks in that open
        (``_check_glance_snapshot``), so the check costs a small read,
        not a second open.  Raises ImageFormatMismatch (or ImageUnsafe)
        when the snapshot of an image declared raw holds another format:
        the same refusal as the download path's, whatever store holds the
        image.
        """
        image_id = image_meta.get('id')
        reason = self._why_not_cloneable(image_location, image_meta)
        if reason:
            LOG.info('Not cloning image %(image)s from %(url)s: %(why)s.',
                     {'image': image_id, 'url': image_location,
                      'why': reason})
            return False
        return self._check_glance_snapshot(locations.parse(image_location),
                                           image_id)

    def _why_not_cloneable(self, image_location: str,
                           image_meta: dict) -> Optional[str]:
        """Why the rules (upstream's and ours) refuse this location, or
        None; the snapshot itself is not opened here."""
        try:
            location = locations.parse(image_location)
        except locations.MalformedLocation as exc:
            return str(exc)
        return locations.why_not_cloneable(
            location, our_fsid=compat.fsid(self._get_fsid()),
            disk_format=image_meta.get('disk_format'),
            volume_pools=self._volume_pools(),
            allowed_pools=self._option('bootcache_allowed_clone_pools'))

    def glance_clone_source(self, image_location: Optional[tuple],
                            image_meta: dict) -> Optional[str]:
        """The rbd:// location ``clone_image``'s first path clones for
        this image, or None when a create goes on to the boot cache.

        Upstream's ``clone_image`` (which that first path is) tries the
        locations in ``locations.upstream_order`` and clones the first
        that ``_is_cloneable`` accepts; this asks the same questions in
        the same order without cloning, for ``cinder-rbd-bootcache warm``
        (an image whose creates clone Glance's snapshot needs no entry).
        """
        for url in locations.upstream_order(image_location):
            if self._is_cloneable(url, image_meta):
                return url
        return None

    def _check_glance_snapshot(self, location: locations.RBDLocation,
                               image_id: Optional[str]) -> bool:
        """Whether the snapshot of an image declared raw may be cloned.

        Upstream clones it unread, so a qcow2, vmdk, LUKS... uploaded as
        raw would become a volume no guest boots.  Its first
        ``image_format.SNAPSHOT_HEAD_BYTES`` go through the download
        path's inspection (``image_format.check_raw_head``), which raises
        when they are not raw content.  False (not cloned) if the snapshot
        cannot be opened or read, as upstream's own check.
        """
        try:
            with self._connector()(location.pool) as (_client, ioctx), \
                    ceph.open_image(ioctx, location.image,
                                    snapshot=location.snapshot,
                                    read_only=True,
                                    binding=self.rbd) as image:
                head = image.read(0, image_format.SNAPSHOT_HEAD_BYTES)
        except self.rbd.Error as exc:
            LOG.info('Not cloning image %(image)s from %(url)s: its '
                     'snapshot cannot be read (%(why)s).',
                     {'image': image_id, 'url': location.url, 'why': exc})
            return False
        image_format.check_raw_head(head, image_id)
        return True

    def _delete_volume(self, volume, client) -> None:
        """Upstream's delete, plus release of the parent's clone snapshot.

        Upstream (cinder 29) removes a clone made by create_cloned_volume
        on its fast path and returns without removing the parent's
        ``<clone>.clone_snap``; the parent then keeps a snapshot nobody uses
        and, once deleted in Cinder, stays in the pool for ever as
        ``volume-*.deleted``.  Only its slow path walks up the chain.  We
        run that same walk after the fast path, when the snapshot is left.
        """
        parent, parent_snap = self._clone_parent(volume, client)
        super()._delete_volume(volume, client)
        # Only the per-clone snapshot create_cloned_volume made is ours to
        # release; a shared one (Glance's, a boot-cache entry's) never is.
        # And only once the clone is gone: a clone with clones of its own
        # is kept as <clone>.deleted, which still depends on the snapshot;
        # the delete of its last clone walks up the chain and releases it.
        if (parent and parent_snap == '%s.clone_snap' % volume.name and
                not self._image_exists(client, volume.name) and
                not self._image_exists(client, '%s.deleted' % volume.name) and
                self._snapshot_exists(client, parent, parent_snap)):
            LOG.debug('Releasing %(parent)s@%(snap)s left by the delete of '
                      '%(volume)s.', {'parent': parent, 'snap': parent_snap,
                                      'volume': volume.name})
            self._delete_clone_parent_refs(client, parent, parent_snap)

    def _clone_parent(self, volume, client) -> tuple:
        try:
            with upstream_rbd.RBDVolumeProxy(self, volume.name,
                                             ioctx=client.ioctx,
                                             read_only=True) as image:
                _pool, parent, snap = self._get_clone_info(image, volume.name)
        except self.rbd.ImageNotFound:
            return None, None
        return parent, snap

    def _image_exists(self, client, image_name: str) -> bool:
        try:
            with upstream_rbd.RBDVolumeProxy(self, image_name,
                                             ioctx=client.ioctx,
                                             read_only=True):
                return True
        except self.rbd.ImageNotFound:
            return False

    def _snapshot_exists(self, client, image_name: str, snap: str) -> bool:
        try:
            with upstream_rbd.RBDVolumeProxy(self, image_name,
                                             ioctx=client.ioctx,
                                             read_only=True) as image:
                return any(s['name'] == snap for s in image.list_snaps())
        except self.rbd.ImageNotFound:
            return False
