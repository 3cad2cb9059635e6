"""Sparse, bounded, asynchronous writes into an open RBD image.

``rbd import`` and ``qemu-img convert`` skip zeros too, but both need the
data in a local file first.  This writer takes blocks from any source (a
Glance stream, a local file), leaves all-zero runs as holes, and keeps at
most ``depth`` librbd aio writes in flight: memory stays at ``depth``
blocks whatever the image size, and Ceph sees a steady queue, which is what
makes a single import run at the speed of the cluster.

Waiting for a write is the one blocking call; ``wait_for`` runs it in
eventlet's native thread pool when Cinder runs under eventlet, so the hub
keeps serving other requests during an import.
"""

from __future__ import annotations

import collections
import functools
from typing import Any
from typing import Iterator

from oslo_utils import units

from cinder_rbd_bootcache.upstream import compat

#: Zero runs shorter than this are written, not skipped: finer runs would
#: mean more, smaller writes for little saved space.
ZERO_GRANULARITY = 64 * units.Ki

_ZEROS = bytes(ZERO_GRANULARITY)


class WriteError(Exception):
    """A librbd write completed with an error."""

    def __init__(self, errno_: int, offset: int) -> None:
        super().__init__('librbd write at offset %d failed with errno %d'
                         % (offset, errno_))
        self.errno = errno_
        self.offset = offset


def nonzero_runs(block: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of ``block`` that holds data.

    A whole-block comparison first: it runs at memory speed, and most blocks
    of an OS image are either all zeros or all data.  Pieces are compared
    in place with ``bytes.startswith`` (memcmp, no copy): slicing each
    64 KiB piece out first copied every data block twice, and memoryview
    slices would compare byte by byte.
    """
    if block.startswith(_zeros(len(block))):
        return
    start = None
    for offset in range(0, len(block), ZERO_GRANULARITY):
        length = min(ZERO_GRANULARITY, len(block) - offset)
        zero_piece = _ZEROS if length == ZERO_GRANULARITY else \
            _ZEROS[:length]
        if block.startswith(zero_piece, offset):
            if start is not None:
                yield start, offset
                start = None
        elif start is None:
            start = offset
    if start is not None:
        yield start, len(block)


@functools.lru_cache(maxsize=4)
def _zeros(length: int) -> bytes:
    """Zeros to compare whole blocks with; blocks are of one or two sizes
    (the RBD object size, and a stream's last block)."""
    return bytes(length)


def wait_for(completion: Any) -> None:
    """Block until ``completion`` is done, off the eventlet hub if any."""
    compat.tpool_wrap(completion).wait_for_complete_and_cb()


def _ignore(_completion: Any) -> None:
    """librbd's python binding calls back on completion; we poll instead."""


class SparseWriter:
    """Writes blocks into ``image`` with at most ``depth`` writes in flight."""

    def __init__(self, image: Any, depth: int) -> None:
        self._image = image
        self._depth = depth
        self._in_flight: collections.deque = collections.deque()
        self.bytes_written = 0
        self.bytes_skipped = 0

    def write(self, offset: int, block: bytes) -> None:
        """Write ``block`` at ``offset``, leaving its zero runs as holes."""
        written = 0
        for start, end in nonzero_runs(block):
            data = block if end - start == len(block) else block[start:end]
            self._submit(offset + start, data)
            written += end - start
        self.bytes_written += written
        self.bytes_skipped += len(block) - written

    def drain(self) -> None:
        """Wait for every write; raise WriteError for the first failed."""
        while self._in_flight:
            self._reap_oldest()

    def abandon(self) -> None:
        """Wait for every write and ignore their results (error path).

        The image must not be closed with writes in flight; a stalled write
        returns once the connection's rados_osd_op_timeout expires.
        """
        while self._in_flight:
            _offset, completion, _data = self._in_flight.popleft()
            wait_for(completion)

    def _submit(self, offset: int, data: bytes) -> None:
        while len(self._in_flight) >= self._depth:
            self._reap_oldest()
        completion = self._image.aio_write(data, offset, _ignore)
        # The binding keeps no reference to ``data``, and librbd reads the
        # caller's buffer until the write completes when an operator sets
        # rbd_disable_zero_copy_writes = false: the block lives as long as
        # its write.
        self._in_flight.append((offset, completion, data))

    def _reap_oldest(self) -> None:
        offset, completion, _data = self._in_flight.popleft()
        wait_for(completion)
        result = completion.get_return_value()
        if result < 0:
            raise WriteError(-result, offset)
