"""Test disk images, made on the spot: raw with a chosen share of data, and
the same content converted by qemu-img to qcow2 (or any format it writes).

The data blocks are pseudo-random (seeded, so runs are repeatable) and
spread over the disk; the rest is holes, as in a real OS image.
"""

from __future__ import annotations

import os
import random
import struct
from typing import Any

from oslo_concurrency import processutils
from oslo_utils import units

BLOCK = 4 * units.Mi


def make_raw(path: str, virtual_size: int, data_bytes: int,
             seed: int = 1) -> str:
    """A sparse raw file of ``virtual_size`` with ``data_bytes`` of data."""
    if virtual_size % BLOCK or data_bytes % BLOCK:
        raise ValueError('sizes must be multiples of %d' % BLOCK)
    rng = random.Random(seed)
    blocks = virtual_size // BLOCK
    chosen = sorted(rng.sample(range(blocks), data_bytes // BLOCK))
    with open(path, 'wb') as f:
        f.truncate(virtual_size)
        for block in chosen:
            f.seek(block * BLOCK)
            f.write(rng.randbytes(BLOCK))
    return path


def convert(raw_path: str, path: str, disk_format: str) -> str:
    """``raw_path`` converted to ``disk_format`` by qemu-img."""
    qemu_format = {'vhd': 'vpc'}.get(disk_format, disk_format)
    processutils.execute('qemu-img', 'convert', '-f', 'raw', '-O',
                         qemu_format, raw_path, path)
    return path


#: The bits of a qcow2 L1 or L2 entry that hold a host offset.
_QCOW2_OFFSET_MASK = 0x00fffffffffffe00


def damage_qcow2(path: str, damage: str) -> str:
    """Damage the metadata of the qcow2 ``path`` whose first cluster holds
    data, the way a bad copy or a crafted upload can: ``'beyond-eof'``
    points that cluster past the end of the file (qemu-img convert reads
    it as zeros and succeeds; qemu-img check finds corruptions),
    ``'leak'`` unmaps it, leaving its refcount (a leaked cluster: space
    wasted, no data wrong)."""
    with open(path, 'r+b') as f:
        header = f.read(48)
        (cluster_bits,) = struct.unpack('>I', header[20:24])
        (l1_offset,) = struct.unpack('>Q', header[40:48])
        f.seek(l1_offset)
        (l1_entry,) = struct.unpack('>Q', f.read(8))
        l2_offset = l1_entry & _QCOW2_OFFSET_MASK
        f.seek(l2_offset)
        (l2_entry,) = struct.unpack('>Q', f.read(8))
        if not l2_entry & _QCOW2_OFFSET_MASK:
            raise ValueError('the first cluster of %s holds no data' % path)
        if damage == 'leak':
            damaged = 0
        elif damage == 'beyond-eof':
            clusters = os.fstat(f.fileno()).st_size >> cluster_bits
            damaged = (l2_entry & ~_QCOW2_OFFSET_MASK) | (
                (clusters + 1024) << cluster_bits)
        else:
            raise ValueError('unknown damage %r' % damage)
        f.seek(l2_offset)
        f.write(struct.pack('>Q', damaged))
    return path


def cached(directory: str, virtual_size: int, data_bytes: int,
           disk_format: str, seed: int = 1) -> tuple[str, str]:
    """(image file, its raw content file), made once per directory."""
    os.makedirs(directory, exist_ok=True)
    stem = os.path.join(directory, 'disk-%d-%d-%d' % (
        virtual_size, data_bytes, seed))
    raw = stem + '.raw'
    if not os.path.exists(raw):
        make_raw(raw + '.part', virtual_size, data_bytes, seed)
        os.rename(raw + '.part', raw)
    if disk_format == 'raw':
        return raw, raw
    image = '%s.%s' % (stem, disk_format)
    if not os.path.exists(image):
        convert(raw, image + '.part', disk_format)
        os.rename(image + '.part', image)
    return image, raw


def write_to_rbd(image: Any, path: str) -> None:
    """Write file ``path`` into open ``rbd.Image`` ``image``, skipping
    all-zero blocks so the RBD image stays as sparse as the file."""
    zero = bytes(BLOCK)
    with open(path, 'rb') as f:
        offset = 0
        while chunk := f.read(BLOCK):
            if chunk != zero[:len(chunk)]:
                image.write(chunk, offset)
            offset += len(chunk)


def add_size_arguments(parser: Any, virtual_mib: int, data_mib: int) -> None:
    """The image-size options the demo and the bench share."""
    parser.add_argument('--virtual-mib', type=int, default=virtual_mib,
                        help='virtual size of the test image in MiB '
                             '(default %d)' % virtual_mib)
    parser.add_argument('--data-mib', type=int, default=data_mib,
                        help='MiB of data in it, the rest holes '
                             '(default %d)' % data_mib)
