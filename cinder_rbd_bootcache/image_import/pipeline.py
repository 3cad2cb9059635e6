"""Glance image -> RBD image, in one pass, verified, with no partial result.

Two ways in, chosen by the image's ``disk_format``:

* **raw** is streamed: chunks from the image service are cut into
  RBD-object sized blocks, checked against Glance's hash, and written
  with bounded aio (``rbd_writer``); zero runs stay holes; nothing
  touches local disk.  The first block is shown to ``format_inspector``
  before anything is written.
* **qcow2, vmdk, vhd, vhdx, vdi** need qemu-img, which needs a seekable
  file: only the downloaded image (its own, usually compressed, size) is
  staged in ``image_conversion_dir``, checked as it arrives, inspected, and
  converted by qemu-img straight into the RBD image (``rbd:`` target,
  ``--target-is-zero``: sparse), never into a second raw file.

The hash check is python-glanceclient's when the image comes through
Cinder's Glance client (it hashes every download itself), else our own
(``ChecksumVerifier``); the byte count is always ours.

Either way a target is an RBD image that already exists, all zeros and as
large as the volume.  One pass can fill several targets (a boot-cache
entry and the volume that asked for it): the image is downloaded, checked
and hashed once, and each block is written to every target, so the volume
needs no snapshot of the entry before it can be handed out.  The
contract: when ``import_image`` raises, every target has been removed
(also from a full pool), and the exception is a Cinder error from
``errors`` that names the image and says what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import re
import tempfile
import threading
import time
from typing import Any
from typing import Callable
from typing import ContextManager
from typing import Iterable
from typing import Iterator
from typing import Optional
from typing import Sequence

# image_utils before anything that imports cinder.image.glance: the two
# import each other, and only this order completes.
from cinder.image import image_utils  # noqa: I100
from oslo_concurrency import processutils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.ceph import pool as ceph_pool
from cinder_rbd_bootcache import errors
from cinder_rbd_bootcache.glance import download as image_download
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import formats as image_format
from cinder_rbd_bootcache.image_import import progress as progress_mod
from cinder_rbd_bootcache.image_import import rbd_writer
from cinder_rbd_bootcache import options
from cinder_rbd_bootcache.upstream import compat

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

#: Chunk size for reading a local image file (Cinder's TemporaryImages).
FILE_CHUNK = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Settings:
    """Per-backend knobs, from the driver's configuration."""
    block_size: int            # RBD object size (rbd_store_chunk_size)
    writes_in_flight: int      # bootcache_import_writes_in_flight
    stall_timeout: int         # bootcache_import_stall_timeout
    progress_interval: float   # bootcache_progress_interval
    conversion_dir: str        # image_conversion_dir
    ceph_conf: str             # rbd_ceph_conf
    rbd_user: str              # rbd_user
    luks_pbkdf2_iterations: int  # bootcache_luks_pbkdf2_iterations
    luks_writers: int          # bootcache_luks_writers


@dataclasses.dataclass(frozen=True)
class Target:
    """An existing, all-zero RBD image of ``size`` bytes to fill."""
    pool: str
    name: str
    size: int


@dataclasses.dataclass
class Report:
    """What an import did, for logs, the bench and the CLI."""
    method: str                # 'stream' or 'convert'
    bytes_received: int
    bytes_written: Optional[int]
    seconds: float
    #: Fills the ``later`` targets of ``import_image`` when they were not
    #: filled yet (a converted image); the caller must call it once.
    fill_later: Optional[Callable[[], None]] = None


#: ``connect(pool)`` -> context manager yielding (rados client, ioctx) whose
#: operations time out after ``stall_timeout``, with the full-try flag
#: (``ceph.connector``).
Connect = Callable[[str], ContextManager[tuple]]


class ChecksumVerifier:
    """Hashes a stream with the algorithm Glance used and compares
    (``ImageFacts.expected_hash``); an image Glance has no hash for
    cannot be verified, which is logged and allowed, as Cinder does.
    With ``hashing`` False (the client verified the stream, see
    ``image_download``) only the byte count is checked.
    """

    def __init__(self, facts: ImageFacts, hashing: bool = True) -> None:
        self.image_id = facts.id
        self.expected_size = facts.size
        expected = facts.expected_hash if hashing else None
        self.algo, self.expected = expected or (None, None)
        if hashing and expected is None:
            LOG.warning('Image %s has no checksum in Glance; its data cannot '
                        'be verified.', self.image_id)
        hasher = (hashlib.new(self.algo, usedforsecurity=False)
                  if self.algo else None)
        # hashlib releases the GIL; under eventlet it must also leave the hub.
        self._hasher = compat.tpool_wrap(hasher) if hasher else None
        self._hashing: Optional[threading.Thread] = None
        self.received = 0

    def update(self, data: bytes | memoryview) -> None:
        """Hash ``data`` while the caller goes on (writing it, reading the
        next block): one block is hashed at a time, in order, so at most
        one block waits here.  Hashing is the one step of an import that
        touches every byte; overlapping it with the rest is what keeps a
        stream near the speed of the hash alone."""
        self.received += len(data)
        if self._hasher is None:
            return
        self._wait_for_hash()
        # Green under eventlet (and the hash runs in its thread pool).
        self._hashing = threading.Thread(target=self._hasher.update,
                                         args=(data,), daemon=True,
                                         name='bootcache-hash')
        self._hashing.start()

    def _wait_for_hash(self) -> None:
        if self._hashing is not None:
            self._hashing.join()
            self._hashing = None

    def finish(self) -> None:
        """Raise unless every byte arrived and the hash matches."""
        self._wait_for_hash()
        if self.expected_size is not None and \
                self.received != self.expected_size:
            raise errors.ImageStreamFailed(
                image_href=self.image_id,
                reason='the stream ended after %d of %d bytes' % (
                    self.received, self.expected_size))
        if self._hasher is None:
            return
        actual = self._hasher.hexdigest()
        if actual != self.expected:
            raise errors.ImageHashMismatch(image_id=self.image_id,
                                           algo=self.algo, actual=actual,
                                           expected=self.expected)


def aligned_blocks(chunks: Iterable[bytes],
                   block_size: int) -> Iterator[bytes]:
    """Re-cut a stream of arbitrary chunks into ``block_size`` blocks.

    Blocks start at multiples of ``block_size``, so each write covers whole
    RBD objects; only the last block may be shorter.  Chunks are gathered
    in a list and joined once per block: with 64 KiB chunks (older
    python-glanceclient; 1 MiB since 4.4.0) that is 64 per 4 MiB object,
    and growing a buffer chunk by chunk cost as much CPU as hashing the
    stream.
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

    Joining a new ``bytes`` per block and writing and dropping it at once
    costs the allocator fresh pages every time: staging a 256 MiB qcow2
    that way took 0.8 to 1.0 s here, against 0.1 s with this ring (and
    0.09 s writing the 64 KiB chunks one by one, which leaves no block to
    hand to a hashing thread).
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


def _is_client_integrity_error(exc: BaseException) -> bool:
    # python-glanceclient hashes every download itself and, after the last
    # chunk, raises IOError(EPIPE, 'Corrupt image download. ...') on a
    # mismatch (glanceclient.common.utils.integrity_iter), before our own
    # verifier sees the end of the stream.  Found by the e2e scenario 4.
    return (isinstance(exc, OSError) and exc.errno == errno.EPIPE and
            'Corrupt image download' in str(exc))


def guarded(chunks: Iterable[bytes], image_id: str,
            expected_size: Optional[int] = None) -> Iterator[bytes]:
    """The image service's chunks; a failure of it is ImageStreamFailed,
    or ImageDataCorrupt when the client found the hash wrong.  A hash
    error after a short stream is the short stream (ImageStreamFailed):
    the client hashed what arrived, and a retry may well succeed."""
    iterator = iter(chunks)
    received = 0
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            if not _is_client_integrity_error(exc):
                raise errors.ImageStreamFailed(
                    image_href=image_id,
                    reason='the image service failed mid-stream (%s)' % exc)
            if expected_size is not None and received < expected_size:
                raise errors.ImageStreamFailed(
                    image_href=image_id,
                    reason='the stream ended after %d of %d bytes' % (
                        received, expected_size))
            raise errors.ImageDataCorrupt(image_id=image_id,
                                          reason=exc.strerror)
        received += len(chunk)
        yield chunk


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


def rbd_spec(pool: str, name: str, user: str, conf: str,
             op_timeout: int) -> str:
    """qemu-img's ``rbd:`` filename; ``:`` in values must be escaped."""
    def esc(value: str) -> str:
        return value.replace('\\', '\\\\').replace(':', '\\:')
    spec = 'rbd:%s/%s:conf=%s' % (esc(pool), esc(name), esc(conf))
    if user:
        spec += ':id=%s' % esc(user)
    return spec + ':rados_osd_op_timeout=%d' % op_timeout


class ImagePipeline:
    """Imports images into RBD images of one backend."""

    def __init__(self, settings: Settings, connect: Connect,
                 execute: Optional[Callable[..., Any]] = None,
                 on_progress: Optional[Callable] = None) -> None:
        self.settings = settings
        self._connect = connect
        self._execute = execute or run_with_progress
        self._on_progress = on_progress

    @classmethod
    def from_configuration(cls, configuration: Any, connect: Connect,
                           on_progress: Optional[Callable] = None
                           ) -> 'ImagePipeline':
        """The pipeline of the backend whose options are ``configuration``
        (its cinder.conf section: ``rbd_*``, ``bootcache_*``); the
        driver's and the CLI's.  ``on_progress`` gets every progress
        update (the CLI's progress bar)."""
        def option(name: str) -> Any:
            return options.value(configuration, name)
        settings = Settings(
            block_size=configuration.rbd_store_chunk_size * units.Mi,
            writes_in_flight=option('bootcache_import_writes_in_flight'),
            stall_timeout=option('bootcache_import_stall_timeout'),
            progress_interval=option('bootcache_progress_interval'),
            # Where volume_utils.image_conversion_dir() points, without
            # its exists-then-makedirs: five creates at once under native
            # threads raced it (FileExistsError).  The pipeline creates the
            # directory only when it stages a file, with exist_ok.
            conversion_dir=(CONF.image_conversion_dir or
                            tempfile.gettempdir()),
            ceph_conf=configuration.rbd_ceph_conf,
            rbd_user=configuration.rbd_user,
            luks_pbkdf2_iterations=option(
                'bootcache_luks_pbkdf2_iterations'),
            luks_writers=option('bootcache_luks_writers'))
        return cls(settings, connect, on_progress=on_progress)

    def import_image(self, context: Any, image_service: Any,
                     facts: ImageFacts, targets: Sequence[Target],
                     local_path: Optional[str] = None,
                     later: Sequence[Target] = ()) -> Report:
        """Fill every target with the image; on failure remove them all.

        ``local_path`` is a copy of the image already on local disk (the
        flow's TemporaryImages); without it the image service is asked.
        ``later`` are targets the caller does not wait for: a stream fills
        them in the same pass (it is read once), a staged image is
        converted into ``targets`` now and into ``later`` by
        ``Report.fill_later``, which keeps the staged file until then and
        removes ``later`` if that conversion fails.
        """
        image_id = facts.id
        disk_format = facts.disk_format
        started = time.monotonic()
        fill_later = None
        targets, later = list(targets), list(later)
        if disk_format == 'raw' or local_path:
            targets, later = targets + later, []
        where = ', '.join('%s/%s' % (t.pool, t.name) for t in targets)
        LOG.info('Importing %(format)s image %(image)s into %(where)s.',
                 {'format': disk_format, 'image': image_id, 'where': where})
        try:
            for pool in sorted({t.pool for t in targets + later}):
                self.refuse_if_full(pool, image_id)
            tracker = progress_mod.ImportProgress(
                image_id, where, facts.size,
                self.settings.progress_interval, self._on_progress)
            if disk_format == 'raw':
                if local_path:
                    chunks, hashing = file_chunks(local_path), True
                else:
                    download = image_download.open_stream(
                        context, image_service, image_id)
                    chunks, hashing = download.chunks, download.hashing
                written = self._stream_raw(guarded(chunks, image_id,
                                                   facts.size),
                                           facts, targets, tracker,
                                           hashing)
                method = 'stream'
            elif local_path:
                written = None
                self._verify_file(local_path, facts, tracker)
                self._convert(local_path, facts, targets)
                method = 'convert'
            else:
                written = None
                fill_later = self._stage_and_convert(
                    context, image_service, facts, targets, later,
                    tracker)
                method = 'convert'
        except Exception:
            with excutils.save_and_reraise_exception():
                self._remove_targets(targets + later)
        report = Report(method, tracker.done, written,
                        time.monotonic() - started, fill_later)
        LOG.info('Imported image %(image)s into %(where)s by '
                 '%(method)s: %(received)s in %(seconds).1f s (%(rate)s/s)%('
                 'written)s.',
                 {'image': image_id, 'where': where, 'method': method,
                  'received': progress_mod.human(report.bytes_received),
                  'seconds': report.seconds,
                  'rate': progress_mod.human(report.bytes_received /
                                             max(report.seconds, 1e-9)),
                  'written': ('' if written is None else
                              ', %s of it data'
                              % progress_mod.human(written))})
        return report

    # -- raw: stream into librbd -------------------------------------------
    def _stream_raw(self, chunks: Iterator[bytes], facts: ImageFacts,
                    targets: Sequence[Target], tracker: Any,
                    hashing: bool) -> int:
        image_id = facts.id
        size = facts.size or 0
        room = min(t.size for t in targets)
        if size > room:
            raise errors.ImageLargerThanVolume(
                image_id=image_id, virtual_size=size,
                volume_size=room // (1024 ** 3))
        verifier = ChecksumVerifier(facts, hashing)
        with contextlib.ExitStack() as stack:
            outputs = []
            connections: dict[str, tuple] = {}
            for target in targets:
                if target.pool not in connections:
                    # One per pool: with bootcache_share_rados_clients
                    # off each is a new librados client, tens of ms.
                    connections[target.pool] = stack.enter_context(
                        self._connect(target.pool))
                client, ioctx = connections[target.pool]
                image = stack.enter_context(ceph.open_image(ioctx,
                                                            target.name))
                writer = rbd_writer.SparseWriter(
                    image, self.settings.writes_in_flight)
                # Registered after close: runs first, so the image is never
                # closed with writes in flight.
                stack.callback(writer.abandon)
                outputs.append((target, client, image, writer))
            offset = 0
            for block in aligned_blocks(chunks, self.settings.block_size):
                if offset == 0:
                    image_format.check_raw_head(
                        block[:image_format.HEAD_BYTES], image_id)
                if offset + len(block) > room:
                    raise errors.ImageLargerThanVolume(
                        image_id=image_id, virtual_size=offset + len(block),
                        volume_size=room // (1024 ** 3))
                verifier.update(block)
                for target, client, _image, writer in outputs:
                    with self._write_errors(client, target, image_id):
                        writer.write(offset, block)
                offset += len(block)
                tracker.advance(len(block))
            for target, client, image, writer in outputs:
                with self._write_errors(client, target, image_id):
                    writer.drain()
                    image.flush()
        verifier.finish()
        return outputs[0][3].bytes_written

    # -- other formats: stage the download, convert into RBD -----------------
    def _stage_and_convert(self, context: Any, image_service: Any,
                           facts: ImageFacts, targets: Sequence[Target],
                           later: Sequence[Target],
                           tracker: Any) -> Optional[Callable[[], None]]:
        image_id = facts.id
        directory = self.settings.conversion_dir
        os.makedirs(directory, exist_ok=True)
        # The staged file is the image as Glance stores it, not its virtual
        # size: that is the only local space this path needs.
        image_utils.check_available_space(directory, facts.size,
                                          image_id)
        download = image_download.open_stream(context, image_service,
                                              image_id)
        verifier = ChecksumVerifier(facts, hashing=download.hashing)
        with tempfile.NamedTemporaryFile(dir=directory,
                                         prefix='bootcache-%s-' % image_id,
                                         suffix='.' + facts.disk_format,
                                         delete=False) as staged:
            path = staged.name
            try:
                # glanceclient yields 1 MiB chunks (64 KiB before
                # 4.4.0), other services maybe less; hashing (off the
                # eventlet hub, so a thread hand-off each) and writing them
                # in FILE_CHUNK batches costs a fraction of the hand-offs
                # and system calls.
                for block in reused_blocks(
                        guarded(download.chunks, image_id, facts.size),
                        FILE_CHUNK):
                    verifier.update(block)
                    staged.write(block)
                    tracker.advance(len(block))
                staged.flush()
                verifier.finish()
                self._convert(path, facts, targets)
            except BaseException:
                with excutils.save_and_reraise_exception():
                    _unlink(path)
        if not later:
            _unlink(path)
            return None

        def fill_later() -> None:
            try:
                self._convert(path, facts, later)
            except Exception:
                with excutils.save_and_reraise_exception():
                    self._remove_targets(later)
            finally:
                _unlink(path)
        return fill_later

    def _verify_file(self, path: str, facts: ImageFacts, tracker: Any) -> None:
        verifier = ChecksumVerifier(facts)
        for chunk in file_blocks(path):
            verifier.update(chunk)
            tracker.advance(len(chunk))
        verifier.finish()

    def _convert(self, path: str, facts: ImageFacts,
                 targets: Sequence[Target]) -> None:
        """Convert the checked file into every target; one qemu-img each,
        all at once (they read the same file from the page cache)."""
        image_id = facts.id
        disk_format = facts.disk_format
        virtual_size = image_format.check_file(path, disk_format, image_id)
        room = min(t.size for t in targets)
        if virtual_size > room:
            raise errors.ImageLargerThanVolume(
                image_id=image_id, virtual_size=virtual_size,
                volume_size=room // (1024 ** 3))
        failures: list[BaseException] = []

        def convert_into(target: Target, report_progress: bool) -> None:
            try:
                self._convert_into(path, image_id, disk_format, virtual_size,
                                   target, report_progress)
            except BaseException as exc:
                failures.append(exc)

        # Threads are green under eventlet; qemu-img's pipes are too.
        others = [threading.Thread(target=convert_into, args=(t, False),
                                   name='bootcache-convert', daemon=True)
                  for t in targets[1:]]
        for thread in others:
            thread.start()
        convert_into(targets[0], True)
        for thread in others:
            thread.join()
        if failures:
            raise failures[0]

    def _convert_into(self, path: str, image_id: str, disk_format: str,
                      virtual_size: int, target: Target,
                      report_progress: bool) -> None:
        settings = self.settings
        started = time.monotonic()
        tracker = progress_mod.ImportProgress(
            image_id, '%s/%s (qemu-img)' % (target.pool, target.name),
            virtual_size, settings.progress_interval,
            self._on_progress if report_progress else None)
        try:
            self._execute(
                ['qemu-img', 'convert', '-p', '-f',
                 image_format.QEMU_FORMATS[disk_format], '-O', 'raw',
                 # Into the existing, zeroed image: holes stay holes.
                 '-n', '--target-is-zero',
                 # Out-of-order writes with 8 coroutines keep Ceph busy.
                 '-W', '-m', '8', path,
                 rbd_spec(target.pool, target.name, settings.rbd_user,
                          settings.ceph_conf, settings.stall_timeout)],
                tracker)
        except processutils.ProcessExecutionError as exc:
            with self._connect(target.pool) as (client, _ioctx):
                flags = ceph_pool.full_flags(client, target.pool)
            if flags:
                raise errors.CephPoolFull(pool=target.pool, image_id=image_id,
                                          flags=', '.join(flags))
            raise errors.ImportWriteFailed(
                image_id=image_id, pool=target.pool,
                reason='qemu-img convert failed: %s' % (
                    exc.stderr or exc).strip())
        LOG.info('qemu-img converted %(format)s image %(image)s '
                 '(%(virtual)s virtual) into %(pool)s/%(name)s in '
                 '%(seconds).1f s.',
                 {'format': disk_format, 'image': image_id,
                  'virtual': progress_mod.human(virtual_size),
                  'pool': target.pool, 'name': target.name,
                  'seconds': time.monotonic() - started})

    # -- failures ------------------------------------------------------------
    def refuse_if_full(self, pool: str, image_id: str) -> None:
        """Raise CephPoolFull now if ``pool`` is flagged full.

        Called before anything is created: creating an RBD image is a write,
        and on a full pool an ordinary connection waits for ever on it.
        """
        with self._connect(pool) as (client, _ioctx):
            flags = ceph_pool.full_flags(client, pool)
        if flags:
            raise errors.CephPoolFull(pool=pool, image_id=image_id,
                                      flags=', '.join(flags))

    @contextlib.contextmanager
    def _write_errors(self, client: Any, target: Target,
                      image_id: str) -> Iterator[None]:
        """A failed librbd write becomes the Cinder error that says why."""
        try:
            yield
        except rbd_writer.WriteError as exc:
            raise self._write_error(client, target, image_id, exc)

    def _write_error(self, client: Any, target: Target, image_id: str,
                     exc: rbd_writer.WriteError) -> Exception:
        flags = ceph_pool.full_flags(client, target.pool)
        if flags or exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return errors.CephPoolFull(pool=target.pool, image_id=image_id,
                                       flags=', '.join(flags) or
                                       os.strerror(exc.errno))
        if exc.errno == errno.ETIMEDOUT:
            return errors.ImportStalled(image_id=image_id, pool=target.pool,
                                        timeout=self.settings.stall_timeout)
        return errors.ImportWriteFailed(image_id=image_id, pool=target.pool,
                                        reason=str(exc))

    def remove_targets(self, targets: Sequence[Target]) -> None:
        """Remove every target (absent ones are skipped)."""
        self._remove_targets(targets)

    def _remove_targets(self, targets: Sequence[Target]) -> None:
        """Remove every target.  Each one's data is discarded before any
        is removed: on a full pool a removal waits until the pool has room
        again, which the data of the targets not yet removed may hold."""
        for target in targets:
            try:
                with self._connect(target.pool) as (_client, ioctx):
                    ceph_pool.discard_image(ioctx, target.name)
            except Exception:
                LOG.debug('Could not discard %(pool)s/%(name)s before '
                          'removing it.', {'pool': target.pool,
                                           'name': target.name},
                          exc_info=True)
        for target in targets:
            self._remove_target(target)

    def _remove_target(self, target: Target) -> None:
        try:
            with self._connect(target.pool) as (_client, ioctx):
                ceph_pool.remove_image(ioctx, target.name)
            LOG.info('Removed partial RBD image %(pool)s/%(name)s.',
                     {'pool': target.pool, 'name': target.name})
        except Exception:
            LOG.exception('Could not remove partial RBD image %(pool)s/'
                          '%(name)s; remove it with "rbd rm".',
                          {'pool': target.pool, 'name': target.name})


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def run_with_progress(cmd: list[str], tracker: Any) -> None:
    """Run ``qemu-img convert -p``, feeding its percentages to ``tracker``.

    qemu-img prints ``    (12.34/100%)`` followed by a carriage return;
    processutils.execute would only return that at the end, so the command
    runs under subprocess here (green under eventlet's monkey patching).
    Raises processutils.ProcessExecutionError like execute does.
    """
    import subprocess
    LOG.debug('Running %s', ' '.join(cmd))
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    pending = b''
    # Small reads: one progress line is ~20 bytes.  read(n) works on the
    # green pipes of eventlet's subprocess too (read1 may not).
    while data := child.stdout.read(32):
        pending += data
        *lines, pending = pending.replace(b'\r', b'\n').split(b'\n')
        for line in lines:
            match = _QEMU_PROGRESS.search(line)
            if match and tracker.total:
                reached = int(float(match.group(1)) * tracker.total / 100)
                if reached > tracker.done:
                    tracker.advance(reached - tracker.done)
    stderr = child.stderr.read().decode(errors='replace')
    if child.wait() != 0:
        raise processutils.ProcessExecutionError(
            exit_code=child.returncode, stderr=stderr, cmd=' '.join(cmd))


_QEMU_PROGRESS = re.compile(rb'\((\d+(?:\.\d+)?)/100%\)')
