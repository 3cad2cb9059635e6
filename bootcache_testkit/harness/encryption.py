"""Encrypted volume types, keys and LUKS read-back for the harness.

The key manager is Cinder's own fixed-key ``ConfKeyManager`` (what a
deployment without Barbican can use); the volume type's encryption spec is
written with Cinder's own DB API, as ``openstack volume type create
--encryption-provider ...`` does through the API; the key id comes from
``volume_utils.create_encryption_key``, as the API makes it.  Read-back
opens each volume's LUKS container with qemu-img and the passphrase in a
0600 file, as Nova's QEMU would open it.
"""

from __future__ import annotations

import binascii
import json
import os
import subprocess
import tempfile
from typing import Any
from typing import Optional

#: The fixed key (hex) of ConfKeyManager; the volumes' passphrase is the
#: hex of its bytes, i.e. this string.
FIXED_KEY = ('6b1a7d2e9f0c4b3a8d5e7f1029384756'
             'a1b2c3d4e5f60718293a4b5c6d7e8f90')
KEY_MANAGER = 'cinder.keymgr.conf_key_mgr.ConfKeyManager'


def configure_key_manager() -> None:
    """Cinder's fixed-key manager with ``FIXED_KEY``."""
    from oslo_config import cfg

    # fixed_key is registered by cinder_process (conf_key_mgr).
    cfg.CONF.set_override('backend', KEY_MANAGER, group='key_manager')
    cfg.CONF.set_override('fixed_key', FIXED_KEY, group='key_manager')


def passphrase() -> str:
    """The passphrase upstream derives from ``FIXED_KEY``."""
    return binascii.hexlify(binascii.unhexlify(FIXED_KEY)).decode()


def volume_type(name: str, provider: str = 'luks',
                cipher: str = 'aes-xts-plain64', key_size: int = 256,
                control_location: str = 'front-end') -> str:
    """Id of the encrypted volume type ``name`` (made once)."""
    from cinder import context
    from cinder.db import api as db_api
    from cinder import exception
    from cinder.volume import volume_types
    admin = context.get_admin_context()
    try:
        return volume_types.get_volume_type_by_name(admin, name)['id']
    except exception.VolumeTypeNotFoundByName:
        pass
    created = volume_types.create(admin, name, {})
    db_api.volume_type_encryption_create(admin, created['id'], {
        'provider': provider, 'cipher': cipher, 'key_size': key_size,
        'control_location': control_location})
    return created['id']


def new_key(context: Any, volume_type_id: str) -> str:
    """A key id for a volume of the type, as the API creates it."""
    from castellan import key_manager
    from oslo_config import cfg

    from cinder.volume import volume_utils
    return volume_utils.create_encryption_key(
        context, key_manager.API(cfg.CONF), volume_type_id)


class LuksReader:
    """qemu-img on a volume's LUKS container, keyed with the passphrase."""

    def __init__(self, sandbox: Any, pool: str = 'volumes',
                 secret: Optional[str] = None) -> None:
        self.sandbox = sandbox
        self.pool = pool
        self._dir = tempfile.mkdtemp(prefix='luks-reader-')
        self.secret_file = os.path.join(self._dir, 'passphrase')
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(secret or passphrase())

    def close(self) -> None:
        os.unlink(self.secret_file)
        os.rmdir(self._dir)

    def __enter__(self) -> 'LuksReader':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def rbd(self, name: str) -> str:
        return 'rbd:%s/%s:conf=%s:id=%s' % (
            self.pool, name, self.sandbox.conf_path,
            self.sandbox.client_name)

    def _opts(self, name: str) -> str:
        return ('driver=luks,key-secret=sec0,file.driver=rbd,'
                'file.filename=%s' % self.rbd(name))

    def _run(self, *args: str) -> str:
        return subprocess.run(
            ['qemu-img', *args], check=True, capture_output=True,
            text=True).stdout

    def info(self, name: str) -> dict:
        """``qemu-img info`` of the container opened with the key
        (virtual-size is what the guest sees)."""
        return json.loads(self._run(
            'info', '--output=json', '--object',
            'secret,id=sec0,format=raw,file=%s' % self.secret_file,
            '--image-opts', self._opts(name)))

    def probe(self, name: str) -> dict:
        """``qemu-img info`` of the RBD image without the key: the
        format qemu detects from its header."""
        return json.loads(self._run('info', '--output=json',
                                    self.rbd(name)))

    def plaintext(self, name: str, length: int, path: str) -> None:
        """The first ``length`` bytes of the plaintext into ``path``."""
        mib = 1024 * 1024
        assert length % mib == 0, length
        self._run('dd', '--object',
                  'secret,id=sec0,format=raw,file=%s' % self.secret_file,
                  '--image-opts', '-O', 'raw', 'bs=1M',
                  'count=%d' % (length // mib),
                  'if=%s' % self._opts(name), 'of=%s' % path)
