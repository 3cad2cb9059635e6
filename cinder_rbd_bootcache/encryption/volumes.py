"""Encrypted volumes filled from the boot cache: which ones, and their key.

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
copy, which makes the empty container straight in Ceph and writes the
image's boot-cache entry into it (``writer.LuksWriter``).  Otherwise (the
flow downloaded the image, e.g. for a signed one) ``create_volume`` makes
the container the same way and the copy fills it.  The entry is populated
on a miss (from the flow's download when there was one), so no create
downloads the image twice.

Applies to front-end encryption with the ``luks`` provider (also named by
its legacy class paths, which ``os_brick.encryptors`` maps to it): the
format Nova opens with QEMU's LUKS driver and qemu-img fills.  Other
providers (``luks2``, ``plain``), back-end (``control_location``
``back-end``) encryption and re-imaging stay upstream's: ``why_not`` and
``why_not_from_cache`` say so.

The volume's passphrase is derived from Cinder's key manager exactly as
upstream derives it (hex of the key's bytes) and given to cryptsetup and
qemu-img only in a file of mode 0600 in a private temporary directory
removed afterwards (``commands.secret_file``); it is never on a command
line nor in a log line.
"""

from __future__ import annotations

import binascii
import dataclasses
from typing import Any
from typing import Optional

from castellan import key_manager as castellan_key_manager
from cinder.db import api as db_api
from cinder import exception
from cinder.image import image_utils
from oslo_config import cfg

from cinder_rbd_bootcache.ceph import pool as ceph_pool
from cinder_rbd_bootcache.encryption import luks_header
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.image_import import pipeline as import_pipeline

CONF = cfg.CONF

#: os_brick.encryptors names the LUKS1 format so; its legacy class paths
#: map to it.
LUKS = 'luks'
FRONT_END = 'front-end'


@dataclasses.dataclass(frozen=True)
class LuksKey:
    """What cryptsetup and qemu-img need to make and open the volume's
    LUKS container."""
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


def why_not_from_cache(encryption: dict, boot_cache_enabled: bool,
                       disable_sparse: bool = False) -> Optional[str]:
    """Why this encrypted volume is not written from the image's
    boot-cache entry, as far as its encryption and the copy ask; None
    if it may be (the image itself is ``clone_policy``'s to judge)."""
    reason = why_not(encryption)
    if reason:
        return reason
    if disable_sparse:
        return 're-imaging keeps upstream\'s path'
    if not boot_cache_enabled:
        return 'bootcache_enabled is off'
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


def refuse_if_full(connect: import_pipeline.Connect, pool: str,
                   volume_id: str) -> None:
    """Raise VolumePoolFull if ``pool`` is flagged full: a qemu-img
    writing there would wait until its op timeout."""
    with connect(pool) as (client, _ioctx):
        ceph_pool.refuse_if_full(client, pool, errors.VolumePoolFull,
                                 volume_id=volume_id)
