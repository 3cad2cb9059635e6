"""Encrypted volumes filled from the boot cache.

Cinder's flow never offers an encrypted volume to ``clone_image``: it
downloads the image into ``image_conversion_dir``, calls the driver's
``create_volume`` (for an encrypted volume upstream's RBD driver writes an
empty LUKS container of the volume's size, keyed with the volume's
passphrase, and imports it into the volume's RBD image), then
``copy_image_to_encrypted_volume``.  Upstream's copy converts the
download to a local raw file, encrypts that into a second local file and
``rbd import``\\ s it in place of the container.

Here, for a volume the flow hook (``flow_hooks``) makes from the cache,
the flow downloads nothing and ``create_volume`` leaves the volume to the
copy (``make_from_entry``), which makes the empty container straight in
Ceph (``create_container``: a header from cryptsetup, ``luks_header``,
written at the start of a new RBD image; no import), then has qemu-img
write the image's boot-cache entry (its golden
snapshot, read from Ceph) into it through qemu's LUKS driver (``fill``),
with several qemu-img at once, each a slice of the image
(``bootcache_luks_writers``).  Otherwise (the flow downloaded the image,
e.g. for a signed one) ``create_volume`` makes the container and the copy
fills it the same way.  Both give upstream's layout: a LUKS header, then
exactly the volume's size for the guest.  The entry is populated on a miss
(from the flow's download when there was one), so no create downloads the
image twice.  LUKS encrypts zeros like any data, so every byte of the
image's virtual size is written (as upstream writes it); the part of the
volume past the image is left as the create left it, as in an empty
encrypted volume.

Applies to front-end encryption with the ``luks`` provider (also named by
its legacy class paths, which ``os_brick.encryptors`` maps to it): the
format Nova opens with QEMU's LUKS driver and qemu-img fills.  Other
providers (``luks2``, ``plain``), back-end (``control_location``
``back-end``) encryption and re-imaging stay upstream's: ``why_not``
says so.

The volume's passphrase is derived from Cinder's key manager exactly as
upstream derives it (hex of the key's bytes) and given to qemu-img only in
a file of mode 0600 in a private temporary directory removed afterwards;
it is never on a command line nor in a log line.
"""

from __future__ import annotations

import binascii
import contextlib
import dataclasses
import functools
import os
import shutil
import tempfile
import time
from typing import Any
from typing import Callable
from typing import Iterator
from typing import Optional

from castellan import key_manager as castellan_key_manager
from cinder.db import api as db_api
from cinder import exception
from cinder.image import image_utils
from oslo_concurrency import processutils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import excutils

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.ceph import pool as ceph_pool
from cinder_rbd_bootcache.encryption import luks_header
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline
from cinder_rbd_bootcache.image_import import qemu as import_qemu

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

#: os_brick.encryptors names the LUKS1 format so; its legacy class paths
#: map to it.
LUKS = 'luks'
FRONT_END = 'front-end'
SECRET_ID = 'sec0'

Execute = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class LuksKey:
    """What qemu-img needs to open the volume's LUKS container."""
    cipher_alg: str
    cipher_mode: str
    ivgen_alg: str
    passphrase: str = dataclasses.field(repr=False)


def encryption_of(context: Any, volume: Any) -> dict:
    """The volume type's encryption spec and the volume's key id."""
    return db_api.volume_encryption_metadata_get(context, volume.id)


def provider_of(encryption: dict) -> Optional[str]:
    """The provider, legacy class paths mapped to their format names as
    Cinder itself maps them (``volume_utils.check_encryption_provider``)."""
    from os_brick import encryptors
    provider = encryption.get('provider')
    return encryptors.LEGACY_PROVIDER_CLASS_TO_FORMAT_MAP.get(provider,
                                                              provider)


def why_not(encryption: dict) -> Optional[str]:
    """Why this encrypted volume stays upstream's; None if we fill it."""
    provider = provider_of(encryption)
    if provider != LUKS:
        return ('encryption provider %s: only luks (LUKS1, which QEMU '
                'opens and qemu-img writes) is filled from the boot '
                'cache' % provider)
    location = encryption.get('control_location') or FRONT_END
    if location != FRONT_END:
        return ('control_location %s: the back end would encrypt the '
                'data itself' % location)
    if not encryption.get('cipher') or not encryption.get('key_size'):
        return 'the encryption spec has no cipher or key_size'
    if not luks_header.available():
        return ('cryptsetup is not installed on this host (Debian and '
                'Ubuntu: cryptsetup-bin); it writes the LUKS headers')
    return None


def luks_key(context: Any, encryption: dict) -> LuksKey:
    """The cipher and passphrase of the volume's LUKS container.

    Raises InvalidVolumeType for a cipher spec that is not
    cipher-chainmode-ivmode, KeyManagerError when the key manager cannot
    give the volume's key.
    """
    spec = image_utils.decode_cipher(encryption['cipher'],
                                     encryption['key_size'])
    key_id = encryption.get('encryption_key_id')
    try:
        key = castellan_key_manager.API(CONF).get(context, key_id)
        encoded = key.get_encoded()
    except Exception as exc:
        # Not logged here: the caller's error names the volume; the key
        # manager's message carries no secret, only what went wrong.
        raise exception.KeyManagerError(
            reason='could not get key %s of the volume (%s: %s); check '
                   'that the key manager is reachable and holds the key'
                   % (key_id, type(exc).__name__, exc)) from exc
    return LuksKey(spec['cipher_alg'], spec['cipher_mode'],
                   spec['ivgen_alg'],
                   binascii.hexlify(encoded).decode('utf-8'))


def _opts_value(value: str) -> str:
    """A value inside qemu's key=value,... syntax: commas doubled."""
    return value.replace(',', ',,')


def convert_command(source: str, target: str, secret_file: str) -> list[str]:
    """qemu-img writing ``source`` (a raw ``rbd:`` filename) into the
    LUKS container in ``target`` (an ``rbd:`` filename), opened with the
    passphrase in ``secret_file``."""
    return ['qemu-img', 'convert', '-f', 'raw', '-n',
            # Out-of-order writes with 8 coroutines keep Ceph busy.
            '-W', '-m', '8',
            '--object', 'secret,id=%s,format=raw,file=%s' % (
                SECRET_ID, _opts_value(secret_file)),
            '--target-image-opts', source,
            'driver=luks,key-secret=%s,file.driver=rbd,file.filename=%s' % (
                SECRET_ID, _opts_value(target))]


@contextlib.contextmanager
def _secret_file(key: LuksKey, base: str) -> Iterator[str]:
    """The passphrase in a 0600 file in a private 0700 directory under
    ``base`` (``Settings.conversion_dir``, Cinder's own scratch space),
    removed on the way out whatever happens."""
    # Created as the import pipeline does (exist_ok: creates at once race
    # for it).
    os.makedirs(base, exist_ok=True)
    private = tempfile.mkdtemp(prefix='bootcache-luks-', dir=base)
    try:
        path = os.path.join(private, 'passphrase')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(key.passphrase)
        yield path
    finally:
        shutil.rmtree(private, ignore_errors=True)


def refuse_if_full(connect: import_pipeline.Connect, pool: str,
                   volume_id: str) -> None:
    """Raise VolumePoolFull if ``pool`` is flagged full: a qemu-img
    writing there would wait until its op timeout."""
    with connect(pool) as (client, _ioctx):
        ceph_pool.refuse_if_full(client, pool, errors.VolumePoolFull,
                                 volume_id=volume_id)


def create_container(target: import_pipeline.Target, key: LuksKey,
                     settings: import_pipeline.Settings,
                     connect: import_pipeline.Connect,
                     remove: Callable[[], Any],
                     execute: Optional[Execute] = None,
                     check_full: Callable[[], None] = lambda: None) -> None:
    """Make ``target`` (absent) an empty LUKS container of its size for
    the guest, straight in Ceph: a header from cryptsetup
    (``luks_header``), written at the start of a new RBD image the
    header's size larger, the layout upstream's ``rbd import`` of a local
    container makes.  ``remove`` removes the RBD image (absent or not)
    after a failure.

    ``check_full`` raises when the pool is full; it is asked before
    anything is written and after a failure, whose cause it then names.
    Raises LuksHeaderFailed when cryptsetup fails (e.g. a cipher it does
    not know).
    """
    check_full()
    cipher, key_bits = luks_header.cryptsetup_cipher(
        key.cipher_alg, key.cipher_mode, key.ivgen_alg)
    try:
        with _secret_file(key, settings.conversion_dir) as secret_file:
            header = luks_header.make(
                os.path.dirname(secret_file), cipher, key_bits,
                settings.luks_pbkdf2_iterations, secret_file,
                execute or processutils.execute)
    except processutils.ProcessExecutionError as exc:
        raise errors.LuksHeaderFailed(
            volume=target.name, cipher=cipher, key_bits=key_bits,
            reason=(exc.stderr or '').strip() or
            'exit code %s' % exc.exit_code)
    try:
        with connect(target.pool) as (_client, ioctx):
            # The cluster's default features, as qemu-img and upstream's
            # create_volume give a volume.
            ceph.rbd_api().create(ioctx, target.name,
                                  len(header) + target.size,
                                  old_format=False)
            with ceph.open_image(ioctx, target.name) as image:
                image.write(header, 0)
    except Exception:
        with excutils.save_and_reraise_exception():
            remove()
            check_full()


def _spec(settings: import_pipeline.Settings, pool: str, name: str) -> str:
    return import_pipeline.rbd_spec(pool, name, settings.rbd_user,
                                    settings.ceph_conf,
                                    settings.stall_timeout)


def _write_failed(exc: processutils.ProcessExecutionError, image_id: str,
                  target: import_pipeline.Target,
                  into: str) -> errors.ImportWriteFailed:
    """The error of a failed qemu-img convert into ``into``; its stderr
    never holds the passphrase."""
    return errors.ImportWriteFailed(
        image_id=image_id, pool=target.pool,
        reason='qemu-img convert into %s failed: %s' % (
            into, (exc.stderr or '').strip() or
            'exit code %s' % exc.exit_code))


#: Slices of an image written by parallel qemu-img processes start on 4 MiB
#: boundaries: whole RBD objects (the default object size), never an
#: object shared by two writers.
SLICE_ALIGN = 4 << 20


def slices(length: int, writers: int) -> list[tuple[int, int]]:
    """``(offset, size)`` of the parts of ``length`` bytes that
    ``writers`` qemu-img processes write at once: whole RBD objects
    (``SLICE_ALIGN``) each but the last.  One part, the whole, when there
    is one writer, too little data for two, or a length qemu's raw
    driver cannot slice (not a multiple of 512 bytes)."""
    if writers <= 1 or length % 512 or length < 2 * SLICE_ALIGN:
        return [(0, length)]
    step = max(SLICE_ALIGN, length // writers // SLICE_ALIGN * SLICE_ALIGN)
    bounds = []
    offset = 0
    while offset + step < length and len(bounds) < writers - 1:
        bounds.append((offset, step))
        offset += step
    bounds.append((offset, length - offset))
    return bounds


def slice_command(source: str, target: str, secret_file: str,
                  offset: int, size: int) -> list[str]:
    """qemu-img writing bytes ``offset`` to ``offset + size`` of
    ``source`` (a raw ``rbd:`` filename) to the same place in the LUKS
    container in ``target`` (qemu's raw driver over each: a window on the
    image, and on the container's plaintext, where LUKS encrypts every
    sector with its own number as it does for the guest)."""
    window = 'driver=raw,offset=%d,size=%d' % (offset, size)
    return ['qemu-img', 'convert', '-n', '-W', '-m', '8',
            '--object', 'secret,id=%s,format=raw,file=%s' % (
                SECRET_ID, _opts_value(secret_file)),
            '--image-opts',
            '%s,file.driver=rbd,file.filename=%s' % (
                window, _opts_value(source)),
            '--target-image-opts',
            '%s,file.driver=luks,file.key-secret=%s,file.file.driver=rbd,'
            'file.file.filename=%s' % (window, SECRET_ID,
                                       _opts_value(target))]


def snapshot_size(connect: import_pipeline.Connect, pool: str, name: str,
                  snapshot: str) -> int:
    """Bytes in snapshot ``name@snapshot`` of ``pool``."""
    with connect(pool) as (_client, ioctx), \
            ceph.open_image(ioctx, name, snapshot=snapshot,
                            read_only=True) as image:
        return image.size()


def make_from_entry(entry_pool: str, entry_name: str, snapshot: str,
                    target: import_pipeline.Target, key: LuksKey,
                    image_id: str, settings: import_pipeline.Settings,
                    connect: import_pipeline.Connect,
                    remove: Callable[[], Any],
                    check_full: Callable[[], None] = lambda: None,
                    execute: Optional[Execute] = None) -> None:
    """Make the volume's LUKS container in Ceph (``create_container``)
    and write the entry into it (``fill``); the RBD image is removed if
    either fails.  Raises LuksHeaderFailed when cryptsetup fails,
    ImportWriteFailed when qemu-img does.
    """
    create_container(target, key, settings, connect, remove, execute,
                     check_full)
    try:
        fill(entry_pool, entry_name, snapshot, target, key, image_id,
             settings, connect, execute)
    except Exception:
        with excutils.save_and_reraise_exception():
            remove()


def fill(entry_pool: str, entry_name: str, snapshot: str,
         target: import_pipeline.Target, key: LuksKey, image_id: str,
         settings: import_pipeline.Settings,
         connect: import_pipeline.Connect,
         execute: Optional[Execute] = None) -> None:
    """Write the entry's snapshot into the volume's LUKS container, with
    ``settings.luks_writers`` qemu-img processes at once when the
    snapshot's length allows (``slices``): qemu-img
    encrypts on one thread, which bounds one process (AES-XTS about
    300 MB/s here), and each process unlocks the header once
    (``bootcache_luks_pbkdf2_iterations``).

    Raises ImportWriteFailed when qemu-img fails (its stderr, which never
    holds the passphrase, is in the message).
    """
    source = _spec(settings, entry_pool,
                   '%s@%s' % (entry_name, snapshot))
    into = _spec(settings, target.pool, target.name)
    parts = slices(snapshot_size(connect, entry_pool, entry_name, snapshot),
                   settings.luks_writers)
    started = time.monotonic()
    try:
        with _secret_file(key, settings.conversion_dir) as secret_file:
            if len(parts) == 1:
                commands = [convert_command(source, into, secret_file)]
            else:
                commands = [slice_command(source, into, secret_file,
                                          offset, size)
                            for offset, size in parts]
            run = execute or processutils.execute
            import_qemu.run_together(
                [functools.partial(run, *command) for command in commands],
                name='bootcache-luks-writer')
    except processutils.ProcessExecutionError as exc:
        raise _write_failed(exc, image_id, target,
                            'the LUKS container of %s' % target.name)
    LOG.info('Wrote boot-cache entry %(entry)s of image %(image)s into '
             'the LUKS container %(pool)s/%(name)s (cipher %(alg)s-%(mode)s-'
             '%(ivgen)s, %(writers)d qemu-img at once) in %(seconds).1f s.',
             {'entry': entry_name, 'image': image_id, 'pool': target.pool,
              'name': target.name, 'alg': key.cipher_alg,
              'mode': key.cipher_mode, 'ivgen': key.ivgen_alg,
              'writers': len(parts),
              'seconds': time.monotonic() - started})
