"""Writing encrypted volumes' LUKS containers straight in Ceph.

``LuksWriter.create_container`` makes a volume's empty container in Ceph:
a header from cryptsetup (``luks_header``) written at the start of a new
RBD image the header's size larger than the volume, no local file and no
``rbd import``.  ``LuksWriter.write_from_entry`` has qemu-img write an
image's boot-cache entry (its golden snapshot, read from Ceph) into the
container through qemu's LUKS driver, with several qemu-img at once, each
a slice of the image (``bootcache_luks_writers``); it first makes the
container when the create left that to it.  Both give upstream's layout: a
LUKS header, then exactly the volume's size for the guest.  LUKS encrypts
zeros like any data, so every byte of the image's virtual size is written
(as upstream writes it); the part of the volume past the image is left as
the create left it, as in an empty encrypted volume.

A writer leaves no RBD image behind when it fails, and names a full pool
as the cause when the pool is flagged full after a failure.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any
from typing import Callable
from typing import ContextManager
from typing import Optional
from typing import Protocol

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units

from cinder_rbd_bootcache.bootcache import catalog
from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.encryption import commands
from cinder_rbd_bootcache.encryption import luks_header
from cinder_rbd_bootcache.encryption import volumes
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline
from cinder_rbd_bootcache.image_import import qemu as import_qemu

LOG = logging.getLogger(__name__)


class Entry(Protocol):
    """The boot-cache entry a volume is written from (``cache.Entry``)."""
    pool: str
    name: str
    image_id: str


class LuksWriter:
    """Makes and fills the LUKS containers of one backend's volumes.

    Its settings are the backend's import pipeline's (``rbd_user``,
    ``rbd_ceph_conf``, the stall timeout, ``bootcache_luks_*``, the
    conversion directory holding the passphrase files); so are its
    full-pool check and its removal of partial RBD images.  ``pool`` is
    the volumes' pool; ``execute`` runs cryptsetup and qemu-img
    (processutils' by default).
    """

    def __init__(self, pipeline: import_pipeline.ImagePipeline,
                 connect: import_pipeline.Connect, pool: str,
                 execute: Optional[commands.Execute] = None) -> None:
        self._pipeline = pipeline
        self._settings = pipeline.settings
        self._connect = connect
        self._pool = pool
        self._execute = execute or processutils.execute

    def target(self, volume: Any) -> import_pipeline.Target:
        """The volume's RBD image, with the volume's size for the guest."""
        return import_pipeline.Target(self._pool, volume.name,
                                      volume.size * units.Gi)

    def remove(self, volume: Any) -> None:
        """Remove the volume's RBD image, data first; nothing if absent."""
        self._pipeline.remove_targets([self.target(volume)])

    def create_container(self, volume: Any, key: volumes.LuksKey) -> None:
        """Make the volume's empty LUKS container (``create_volume``).

        A pool flagged full is refused before anything is written
        (VolumePoolFull, as ``refuse_if_full``), and named as the cause
        of a failed write.  Raises LuksHeaderFailed when cryptsetup fails
        (e.g. a cipher it does not know).
        """
        target = self.target(volume)
        self._create(target, key, check_full=lambda: volumes.refuse_if_full(
            self._connect, target.pool, volume.id))

    def write_from_entry(self, entry: Entry, volume: Any,
                         key: volumes.LuksKey,
                         make_container: bool = False) -> None:
        """Write the entry's snapshot into the volume's LUKS container,
        made first when ``make_container`` (the create left it to us).

        Raises LuksHeaderFailed when cryptsetup fails, ImportWriteFailed
        when qemu-img does (its stderr, which never holds the passphrase,
        is in the message), CephPoolFull when the pool is flagged full
        after a failed write.
        """
        target = self.target(volume)
        if make_container:
            # The caller checked the pool before it got the entry.
            self._create(target, key, check_full=lambda: None)
        try:
            self._fill(entry, target, key)
        except Exception as exc:
            with excutils.save_and_reraise_exception():
                self._pipeline.remove_targets([target])
                if isinstance(exc, errors.ImportWriteFailed):
                    # A full pool says so rather than "qemu-img failed".
                    self._pipeline.refuse_if_full(target.pool,
                                                  entry.image_id)

    def _create(self, target: import_pipeline.Target, key: volumes.LuksKey,
                check_full: Callable[[], None]) -> None:
        """Make ``target`` (absent) an empty LUKS container of its size
        for the guest, the layout upstream's ``rbd import`` of a local
        container makes.  ``check_full`` raises when the pool is full; it
        is asked before anything is written and after a failure, whose
        cause it then names.  The RBD image is removed after a failure.
        """
        check_full()
        cipher, key_bits = luks_header.cryptsetup_cipher(
            key.cipher_alg, key.cipher_mode, key.ivgen_alg)
        try:
            with self._secret_file(key) as secret_file:
                header = luks_header.make(
                    os.path.dirname(secret_file), cipher, key_bits,
                    self._settings.luks_pbkdf2_iterations, secret_file,
                    self._execute)
        except processutils.ProcessExecutionError as exc:
            raise errors.LuksHeaderFailed(
                volume=target.name, cipher=cipher, key_bits=key_bits,
                reason=_stderr_of(exc))
        try:
            with self._connect(target.pool) as (_client, ioctx):
                # The cluster's default features, as qemu-img and
                # upstream's create_volume give a volume.
                ceph.rbd_api().create(ioctx, target.name,
                                      len(header) + target.size,
                                      old_format=False)
                with ceph.open_image(ioctx, target.name) as image:
                    image.write(header, 0)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._pipeline.remove_targets([target])
                check_full()

    def _fill(self, entry: Entry, target: import_pipeline.Target,
              key: volumes.LuksKey) -> None:
        """Write the entry's snapshot into the container in ``target``,
        with ``bootcache_luks_writers`` qemu-img processes at once when
        the snapshot's length allows (``commands.slices``): qemu-img
        encrypts on one thread, which bounds one process, and each process
        unlocks the header once (``bootcache_luks_pbkdf2_iterations``).
        """
        source = self._spec(entry.pool,
                            '%s@%s' % (entry.name, catalog.SNAPSHOT))
        into = self._spec(target.pool, target.name)
        parts = commands.slices(self._snapshot_size(entry),
                                self._settings.luks_writers)
        started = time.monotonic()
        try:
            with self._secret_file(key) as secret_file:
                import_qemu.run_together(
                    [functools.partial(self._execute, *command)
                     for command in commands.fill_commands(
                         source, into, secret_file, parts)],
                    name='bootcache-luks-writer')
        except processutils.ProcessExecutionError as exc:
            raise errors.ImportWriteFailed(
                image_id=entry.image_id, pool=target.pool,
                reason='qemu-img convert into the LUKS container of %s '
                       'failed: %s' % (target.name, _stderr_of(exc)))
        LOG.info('Wrote boot-cache entry %(entry)s of image %(image)s into '
                 'the LUKS container %(pool)s/%(name)s (cipher %(alg)s-'
                 '%(mode)s-%(ivgen)s, %(writers)d qemu-img at once) in '
                 '%(seconds).1f s.',
                 {'entry': entry.name, 'image': entry.image_id,
                  'pool': target.pool, 'name': target.name,
                  'alg': key.cipher_alg, 'mode': key.cipher_mode,
                  'ivgen': key.ivgen_alg, 'writers': len(parts),
                  'seconds': time.monotonic() - started})

    def _secret_file(self, key: volumes.LuksKey) -> ContextManager[str]:
        return commands.secret_file(key.passphrase,
                                    self._settings.conversion_dir)

    def _spec(self, pool: str, name: str) -> str:
        return import_pipeline.rbd_spec(pool, name, self._settings.rbd_user,
                                        self._settings.ceph_conf,
                                        self._settings.stall_timeout)

    def _snapshot_size(self, entry: Entry) -> int:
        with self._connect(entry.pool) as (_client, ioctx), \
                ceph.open_image(ioctx, entry.name, snapshot=catalog.SNAPSHOT,
                                read_only=True) as image:
            return image.size()


def _stderr_of(exc: processutils.ProcessExecutionError) -> str:
    """What a failed command said (never the passphrase, which is only in
    a file), or its exit code when it said nothing."""
    return (exc.stderr or '').strip() or 'exit code %s' % exc.exit_code
