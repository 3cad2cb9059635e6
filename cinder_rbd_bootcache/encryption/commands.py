"""The qemu-img commands that write a boot-cache entry into a LUKS
container, and the passphrase file they (and cryptsetup) read.

The passphrase is only ever in a file of mode 0600 in a private 0700
directory removed afterwards (``secret_file``): never on a command line,
where any user of the host could read it.  qemu's option syntax
(``key=value,...``) doubles commas inside values, so no path or ``rbd:``
filename can add options of its own (``opts_value``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any
from typing import Callable
from typing import Iterator

SECRET_ID = 'sec0'

#: Slices of an image written by parallel qemu-img processes start on 4 MiB
#: boundaries: whole RBD objects (the default object size), never an
#: object shared by two writers.
SLICE_ALIGN = 4 << 20

Execute = Callable[..., Any]


def opts_value(value: str) -> str:
    """A value inside qemu's key=value,... syntax: commas doubled."""
    return value.replace(',', ',,')


def _secret_object(secret_file: str) -> str:
    return 'secret,id=%s,format=raw,file=%s' % (SECRET_ID,
                                                opts_value(secret_file))


def convert_command(source: str, target: str, secret_file: str) -> list[str]:
    """qemu-img writing ``source`` (a raw ``rbd:`` filename) into the
    LUKS container in ``target`` (an ``rbd:`` filename), opened with the
    passphrase in ``secret_file``."""
    return ['qemu-img', 'convert', '-f', 'raw', '-n',
            # Out-of-order writes with 8 coroutines keep Ceph busy.
            '-W', '-m', '8',
            '--object', _secret_object(secret_file),
            '--target-image-opts', source,
            'driver=luks,key-secret=%s,file.driver=rbd,file.filename=%s' % (
                SECRET_ID, opts_value(target))]


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
            '--object', _secret_object(secret_file),
            '--image-opts',
            '%s,file.driver=rbd,file.filename=%s' % (
                window, opts_value(source)),
            '--target-image-opts',
            '%s,file.driver=luks,file.key-secret=%s,file.file.driver=rbd,'
            'file.file.filename=%s' % (window, SECRET_ID,
                                       opts_value(target))]


def fill_commands(source: str, target: str, secret_file: str,
                  parts: list[tuple[int, int]]) -> list[list[str]]:
    """The qemu-img commands writing ``parts`` (``slices``) of
    ``source`` into the container in ``target``: one plain convert for a
    single part, one windowed convert per part otherwise."""
    if len(parts) == 1:
        return [convert_command(source, target, secret_file)]
    return [slice_command(source, target, secret_file, offset, size)
            for offset, size in parts]


@contextlib.contextmanager
def secret_file(passphrase: str, base: str) -> Iterator[str]:
    """The passphrase in a 0600 file in a private 0700 directory under
    ``base`` (the backend's conversion directory, created if missing),
    removed on the way out whatever happens."""
    # exist_ok: creates at once race to make it, as in the import pipeline.
    os.makedirs(base, exist_ok=True)
    private = tempfile.mkdtemp(prefix='bootcache-luks-', dir=base)
    try:
        path = os.path.join(private, 'passphrase')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(passphrase)
        yield path
    finally:
        shutil.rmtree(private, ignore_errors=True)
