"""What a boot-cache entry's bytes must hash to, and checking that they do.

An entry of a raw image holds the image's bytes, then zeros: Glance's own
hash (``ImageFacts.expected_hash``) of its first ``size`` bytes must
match, as it did while the pipeline streamed them.  An entry of a
converted image (qcow2, vmdk, ...) holds what qemu-img wrote, which no
Glance hash describes; its sha256 is computed
once, right after the entry is published (off the create path), or by the
first ``verify`` if that did not happen (``content_sha256`` in its
metadata).

Only allocated extents are read (``diff_iterate``); holes are hashed as
zeros without reading them, so checking a sparse entry costs its data,
not its virtual size.
"""

from __future__ import annotations

import hashlib
from typing import Any
from typing import Optional

from oslo_utils import units

from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.upstream import compat

CONTENT_ALGO = 'sha256'
_ZEROS = bytes(4 * units.Mi)


def _extents(image: Any, length: int) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    if length:
        image.diff_iterate(0, length, None,
                           lambda off, ln, exists:
                           found.append((off, ln)) if exists else None)
    return sorted(found)


def _feed_zeros(hasher: Any, count: int) -> None:
    while count > 0:
        step = min(count, len(_ZEROS))
        hasher.update(memoryview(_ZEROS)[:step])
        count -= step


def digest(image: Any, length: int, algo: str) -> str:
    """``algo`` hex digest of the first ``length`` bytes of an open
    ``rbd.Image`` (parent included), holes hashed as zeros."""
    # Hashing runs off the eventlet hub (the driver digests entries in
    # the background of a running cinder-volume).
    hasher = compat.tpool_wrap(hashlib.new(algo))
    position = 0
    for offset, extent_length in _extents(image, length):
        end = min(offset + extent_length, length)
        if end <= position:
            continue
        start = max(offset, position)
        _feed_zeros(hasher, start - position)
        while start < end:
            step = min(4 * units.Mi, end - start)
            hasher.update(image.read(start, step))
            start += step
        position = end
    _feed_zeros(hasher, length - position)
    return hasher.hexdigest()


def nonzero_after(image: Any, start: int) -> int:
    """Bytes that are not zero from ``start`` to the end of the image."""
    size = image.size()
    found = 0
    if size > start:
        for offset, extent_length in _extents(image, size):
            offset_end = offset + extent_length
            if offset_end <= start:
                continue
            offset = max(offset, start)
            data = image.read(offset, offset_end - offset)
            found += len(data) - data.count(0)
    return found


def expected(metadata: dict) -> Optional[tuple[str, str, Optional[int]]]:
    """(algorithm, hex digest, length) an entry's bytes must match, from
    its recorded metadata (length None: the whole entry); None when
    nothing was recorded."""
    if metadata.get('content_sha256'):
        return CONTENT_ALGO, metadata['content_sha256'], None
    if content_digest_pending(metadata):
        return None
    facts = ImageFacts.from_entry_metadata(metadata)
    if facts.expected_hash is None:
        return None
    return (*facts.expected_hash, facts.size or 0)


def content_digest_pending(metadata: dict) -> bool:
    """A converted entry whose digest is not recorded yet: it is recorded
    after the entry is published, off the create path, or by the first
    ``verify``.  Glance's hash describes the download, not these bytes."""
    return (metadata.get('disk_format', 'raw') != 'raw' and
            not metadata.get('content_sha256'))


def check(image: Any, metadata: dict) -> tuple[bool, str]:
    """Whether the entry open as ``image`` still holds what it recorded."""
    wanted = expected(metadata)
    if wanted is None:
        return False, 'no hash recorded for this entry'
    algo, value, length = wanted
    if length is None:
        length = image.size()
    actual = digest(image, length, algo)
    if actual != value:
        return False, '%s of the first %d bytes is %s..., recorded %s...' % (
            algo, length, actual[:16], value[:16])
    tail = nonzero_after(image, length)
    if tail:
        return False, '%d non-zero bytes after the image\'s %d' % (tail,
                                                                   length)
    return True, '%s matches' % algo
