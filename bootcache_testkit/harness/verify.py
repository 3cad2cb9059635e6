"""Read a volume back from Ceph and compare it with what it should hold."""

from __future__ import annotations

import hashlib
from typing import Any
from typing import Optional

from oslo_utils import units

CHUNK = 4 * units.Mi


def file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def rbd_digest(ioctx: Any, name: str, length: int,
               snapshot: Optional[str] = None) -> str:
    """sha256 of the first ``length`` bytes of an RBD image."""
    import rbd
    digest = hashlib.sha256()
    with rbd.Image(ioctx, name, snapshot=snapshot, read_only=True) as image:
        offset = 0
        while offset < length:
            n = min(CHUNK, length - offset)
            digest.update(image.read(offset, n))
            offset += n
    return digest.hexdigest()


def nonzero_beyond(ioctx: Any, name: str, start: int) -> int:
    """Bytes that are not zero in the image from ``start`` to its end.

    Only allocated extents are read (diff_iterate, parent included), so a
    large, mostly empty volume is checked in milliseconds.
    """
    import rbd
    found = 0
    with rbd.Image(ioctx, name, read_only=True) as image:
        size = image.size()
        extents: list[tuple[int, int]] = []
        if size > start:
            image.diff_iterate(start, size - start, None,
                               lambda off, ln, exists:
                               extents.append((off, ln)) if exists else None)
        for off, ln in extents:
            data = image.read(off, ln)
            found += ln - data.count(0)
    return found


def volume_matches(ioctx: Any, name: str, raw_path: str,
                   raw_size: int) -> tuple[bool, str]:
    """Whether volume ``name`` holds exactly ``raw_path`` then zeros."""
    expected = file_digest(raw_path)
    actual = rbd_digest(ioctx, name, raw_size)
    if actual != expected:
        return False, 'first %d bytes differ (sha256 %s, want %s)' % (
            raw_size, actual[:12], expected[:12])
    tail = nonzero_beyond(ioctx, name, raw_size)
    if tail:
        return False, '%d non-zero bytes past the image end' % tail
    return True, 'sha256 %s' % expected[:12]


def allocated_bytes(ioctx: Any, name: str) -> int:
    """Bytes of the image's own allocated extents (its sparseness)."""
    import rbd
    total = 0
    with rbd.Image(ioctx, name, read_only=True) as image:
        def count(_offset: int, length: int, exists: bool) -> None:
            nonlocal total
            total += length if exists else 0
        image.diff_iterate(0, image.size(), None, count)
    return total
