"""Cutting a stream or a file into the blocks an import writes.

Two shapes, for two kinds of consumer:

* ``aligned_blocks`` yields a new ``bytes`` per block: librbd keeps a
  block for as long as its write is in flight (``rbd_writer``), so each
  needs memory of its own;
* ``reused_blocks`` and ``file_blocks`` fill a small ring of preallocated
  buffers: for consumers done with a block before the ring comes round
  (writing it to a file, hashing it), they spare the allocator a fresh
  block of pages each time.

``file_chunks`` reads a local file in new ``bytes`` for the first kind.
"""

from __future__ import annotations

from typing import Iterable
from typing import Iterator

#: Chunk size for reading a local image file (Cinder's TemporaryImages),
#: and the block size of a staged download.
FILE_CHUNK = 4 * 1024 * 1024


def aligned_blocks(chunks: Iterable[bytes],
                   block_size: int) -> Iterator[bytes]:
    """Re-cut a stream of arbitrary chunks into ``block_size`` blocks.

    Blocks start at multiples of ``block_size``, so each write covers whole
    RBD objects; only the last block may be shorter.  Chunks are gathered
    in a list and joined once per block: the image service's chunks are
    much smaller than an RBD object (python-glanceclient's are 1 MiB, 64 KiB
    before 4.4.0), and growing a buffer chunk by chunk would copy each
    byte many times.
    """
    pending: list[bytes] = []
    pending_bytes = 0
    for chunk in chunks:
        if not pending and len(chunk) == block_size:
            yield bytes(chunk)
            continue
        pending.append(chunk)
        pending_bytes += len(chunk)
        if pending_bytes < block_size:
            continue
        joined = b''.join(pending)
        offset = 0
        while len(joined) - offset >= block_size:
            # A whole-length slice of bytes is the object itself: no copy.
            yield joined[offset:offset + block_size]
            offset += block_size
        rest = joined[offset:]
        pending = [rest] if rest else []
        pending_bytes = len(rest)
    if pending:
        yield b''.join(pending)


def reused_blocks(chunks: Iterable[bytes], block_size: int,
                  buffers: int = 3) -> Iterator[memoryview]:
    """Gather a stream of chunks into ``block_size`` blocks held in a ring
    of ``buffers`` preallocated buffers.

    For consumers that are done with a block within ``buffers - 1`` further
    blocks: writing it to a file, or a ``ChecksumVerifier``, which hashes
    one block while the next is gathered.  A block yielded here is
    overwritten ``buffers`` blocks later, so nothing may keep it: librbd
    writes in flight (``aligned_blocks``) need blocks of their own.

    A new ``bytes`` per block, written and dropped at once, would cost the
    allocator fresh pages for every block; writing the chunks one by one
    would leave no block to hand to a hashing thread.
    """
    ring = [bytearray(block_size) for _ in range(max(buffers, 2))]
    slot = 0
    view = memoryview(ring[slot])
    filled = 0
    for chunk in chunks:
        position, length = 0, len(chunk)
        while position < length:
            step = min(length - position, block_size - filled)
            view[filled:filled + step] = chunk[position:position + step] \
                if step < length else chunk
            filled += step
            position += step
            if filled == block_size:
                yield view
                slot = (slot + 1) % len(ring)
                view = memoryview(ring[slot])
                filled = 0
    if filled:
        yield view[:filled]


def file_chunks(path: str) -> Iterator[bytes]:
    """A local file in FILE_CHUNK pieces, each a new ``bytes`` (the raw
    stream keeps them in flight in librbd)."""
    with open(path, 'rb') as f:
        while chunk := f.read(FILE_CHUNK):
            yield chunk


def file_blocks(path: str, buffers: int = 3) -> Iterator[memoryview]:
    """A local file in FILE_CHUNK blocks read into a ring of buffers, with
    ``reused_blocks``' rule: a block is overwritten ``buffers`` blocks
    later."""
    ring = [bytearray(FILE_CHUNK) for _ in range(max(buffers, 2))]
    slot = 0
    with open(path, 'rb', buffering=0) as f:
        while True:
            view = memoryview(ring[slot])
            count = f.readinto(view)
            if not count:
                return
            yield view[:count]
            slot = (slot + 1) % len(ring)
