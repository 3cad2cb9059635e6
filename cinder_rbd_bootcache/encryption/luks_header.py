"""The LUKS1 header of a new encrypted volume, made by cryptsetup.

qemu-img can write the header itself (``qemu-img create -f luks``), but it
first times PBKDF2 to turn its ``iter-time`` into iteration counts: qemu
calibrates twice (the master key's digest, then the key slot), each time
until one round takes more than 500 ms of CPU, so every header costs
seconds of CPU whatever ``iter-time`` asks, a large part of a create from
the boot cache; and on hosts whose per-thread CPU clock advances in coarse
steps the timing fails outright ("Unable to get accurate CPU usage").
``cryptsetup luksFormat`` with a fixed iteration count
(``--pbkdf-force-iterations``) times nothing: it spends only the PBKDF2
rounds it is asked for.
cryptsetup is the reference implementation of LUKS and the tool os-brick
already runs on Cinder and Nova hosts for encrypted volumes.

cryptsetup writes into a small local file in the caller's private
directory (the one of the passphrase file, removed with it); the caller
writes the bytes to the volume's RBD image.  The header holds no secret in
clear: its key slot is the master key encrypted under the passphrase.

Names: cryptsetup takes Cinder's cipher spec as is (``aes-xts-plain64``)
and the size of the whole master key, twice the cipher's key for XTS.
Cinder's ``key_size`` 256 with XTS is qemu's ``cipher-alg=aes-256`` (two
256-bit keys), so ``--key-size 512``: the header qemu-img writes for the
same spec, and the one upstream's conversion makes.
"""

from __future__ import annotations

import os
import shutil
import struct
from typing import Any
from typing import Callable

COMMAND = 'cryptsetup'
#: Room for what luksFormat writes: LUKS1 puts the payload at 2 MiB
#: (4096 sectors) for every key size up to 512 bits.
FILE_BYTES = 4 << 20
MAGIC = b'LUKS\xba\xbe'
#: The payload's offset, in 512-byte sectors, big-endian at byte 104.
PAYLOAD_OFFSET = struct.Struct('>I')
PAYLOAD_OFFSET_AT = 104
FILE_NAME = 'luks-header'


def available() -> bool:
    """Whether cryptsetup is installed (Debian: cryptsetup-bin)."""
    return shutil.which(COMMAND) is not None


def cryptsetup_cipher(cipher_alg: str, cipher_mode: str,
                      ivgen_alg: str) -> tuple[str, int]:
    """cryptsetup's ``--cipher`` and ``--key-size`` (bits) for the
    cipher Cinder's ``decode_cipher`` gave (``aes-256``, ``xts``,
    ``plain64``).  Raises ValueError for an algorithm without a size."""
    name, _sep, bits = cipher_alg.rpartition('-')
    if not name or not bits.isdigit():
        raise ValueError('cipher algorithm %r has no key size' % cipher_alg)
    key_bits = int(bits) * (2 if cipher_mode == 'xts' else 1)
    return '%s-%s-%s' % (name, cipher_mode, ivgen_alg), key_bits


def format_command(path: str, cipher: str, key_bits: int, iterations: int,
                   secret_file: str) -> list[str]:
    """cryptsetup writing a LUKS1 header to the file ``path``, its key
    slot opened by the passphrase in ``secret_file`` (read whole, as
    qemu's secret objects read it) after ``iterations`` of PBKDF2-SHA256."""
    return [COMMAND, 'luksFormat', '--batch-mode', '--type', 'luks1',
            '--cipher', cipher, '--key-size', str(key_bits),
            '--hash', 'sha256', '--pbkdf-force-iterations', str(iterations),
            '--key-file', secret_file, path]


def payload_offset(head: bytes) -> int:
    """Bytes before a LUKS1 container's payload, from its first bytes."""
    if not head.startswith(MAGIC):
        raise ValueError('no LUKS1 header')
    (sectors,) = PAYLOAD_OFFSET.unpack_from(head, PAYLOAD_OFFSET_AT)
    return sectors * 512


def make(directory: str, cipher: str, key_bits: int, iterations: int,
         secret_file: str, execute: Callable[..., Any]) -> bytes:
    """A new header (random master key, one key slot), its bytes up to
    the payload.  Raises ProcessExecutionError when cryptsetup fails."""
    path = os.path.join(directory, FILE_NAME)
    with open(path, 'wb') as f:
        f.truncate(FILE_BYTES)
    try:
        execute(*format_command(path, cipher, key_bits, iterations,
                                secret_file))
        with open(path, 'rb') as f:
            data = f.read()
    finally:
        os.unlink(path)
    return data[:payload_offset(data)]
