"""Glance image -> RBD image, in one pass, verified, with no partial result.

Two ways in, chosen by the image's ``disk_format``:

* **raw** is streamed: chunks from the image service are cut into
  RBD-object sized blocks (``blocks``), checked against Glance's hash
  (``verify``), and written with bounded aio (``rbd_writer``); zero runs
  stay holes; nothing touches local disk.  The first block is shown to
  ``format_inspector`` before anything is written.
* **qcow2, vmdk, vhd, vhdx, vdi** need qemu-img, which needs a seekable
  file: only the downloaded image (its own, usually compressed, size) is
  staged in ``image_conversion_dir``, checked as it arrives, inspected, and
  converted by qemu-img straight into the RBD image (``qemu``: ``rbd:``
  target, ``--target-is-zero``: sparse), never into a second raw file.

The hash check is ours (``verify.ChecksumVerifier``): Cinder's Glance
client is asked for the data without its own check (``do_checksum=False``,
see ``glance.download``).  Only an image service reached through its
``download`` alone, whose client checks the hash itself, is left to that
check.  The byte count is always ours.

Either way a target is an RBD image that already exists, all zeros and as
large as the volume (``targets``).  One pass can fill several targets (a
boot-cache entry and the volume that asked for it): the image is
downloaded, checked and hashed once, and each block is written to every
target, so the volume needs no snapshot of the entry before it can be
handed out.  The contract: when ``import_image`` raises, every target has
been removed (also from a full pool), and the exception is a Cinder error
from ``errors`` that names the image and says what to do.

This module keeps the orchestration; ``Settings``, ``Target``, ``Connect``
and ``rbd_spec`` are importable from here too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from typing import Any
from typing import Callable
from typing import ContextManager
from typing import Iterator
from typing import Optional
from typing import Sequence

# image_utils before anything that imports cinder.image.glance: the two
# import each other, and only this order completes.
from cinder.image import image_utils  # noqa: I100
from oslo_log import log as logging
from oslo_utils import excutils

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.glance import download as image_download
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import formats as image_format
from cinder_rbd_bootcache.image_import import blocks
from cinder_rbd_bootcache.image_import import progress as progress_mod
from cinder_rbd_bootcache.image_import import qemu
from cinder_rbd_bootcache.image_import import rbd_writer
from cinder_rbd_bootcache.image_import.settings import Settings
from cinder_rbd_bootcache.image_import import targets as targets_mod
from cinder_rbd_bootcache.image_import import verify

__all__ = ['Connect', 'ImagePipeline', 'Report', 'Settings', 'Target',
           'rbd_spec']

LOG = logging.getLogger(__name__)

Target = targets_mod.Target
Connect = targets_mod.Connect
rbd_spec = qemu.rbd_spec


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


class ImagePipeline:
    """Imports images into RBD images of one backend."""

    def __init__(self, settings: Settings, connect: Connect,
                 execute: Optional[Callable[..., Any]] = None,
                 on_progress: Optional[Callable] = None) -> None:
        self.settings = settings
        self._connect = connect
        self._on_progress = on_progress
        self._converter = qemu.Converter(settings, connect, execute,
                                         on_progress)

    @classmethod
    def from_configuration(cls, configuration: Any, connect: Connect,
                           on_progress: Optional[Callable] = None
                           ) -> 'ImagePipeline':
        """The pipeline of the backend whose options are ``configuration``
        (its cinder.conf section: ``rbd_*``, ``bootcache_*``); the
        driver's and the CLI's.  ``on_progress`` gets every progress
        update (the CLI's progress bar)."""
        return cls(Settings.from_configuration(configuration), connect,
                   on_progress=on_progress)

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
                    chunks, hashing = blocks.file_chunks(local_path), True
                else:
                    download = image_download.open_stream(
                        context, image_service, image_id)
                    chunks, hashing = download.chunks, download.hashing
                written = self._stream_raw(
                    verify.guarded(chunks, image_id, facts.size),
                    facts, targets, tracker, hashing)
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
                self.remove_targets(targets + later)
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
        targets_mod.check_room(image_id, size, targets)
        verifier = verify.ChecksumVerifier(facts, hashing)
        with contextlib.ExitStack() as stack:
            outputs = []
            connections: dict[str, tuple] = {}
            for target in targets:
                if target.pool not in connections:
                    # One per pool: with bootcache_share_rados_clients
                    # off each is a new librados client.
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
            for block in blocks.aligned_blocks(chunks,
                                               self.settings.block_size):
                if offset == 0:
                    image_format.check_raw_head(
                        block[:image_format.HEAD_BYTES], image_id)
                targets_mod.check_room(image_id, offset + len(block),
                                       targets)
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
        verifier = verify.ChecksumVerifier(facts,
                                           hashing=download.hashing)
        with tempfile.NamedTemporaryFile(dir=directory,
                                         prefix='bootcache-%s-' % image_id,
                                         suffix='.' + facts.disk_format,
                                         delete=False) as staged:
            path = staged.name
            try:
                # The service's chunks are smaller than FILE_CHUNK
                # (python-glanceclient's are 1 MiB); hashed (a hand-off
                # to a thread off the eventlet hub) and written (a system
                # call) in FILE_CHUNK blocks they make fewer of both.
                for block in blocks.reused_blocks(
                        verify.guarded(download.chunks, image_id,
                                       facts.size),
                        blocks.FILE_CHUNK):
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
                    self.remove_targets(later)
            finally:
                _unlink(path)
        return fill_later

    def _verify_file(self, path: str, facts: ImageFacts, tracker: Any) -> None:
        verifier = verify.ChecksumVerifier(facts)
        for chunk in blocks.file_blocks(path):
            verifier.update(chunk)
            tracker.advance(len(chunk))
        verifier.finish()

    def _convert(self, path: str, facts: ImageFacts,
                 targets: Sequence[Target]) -> None:
        self._converter.convert(path, facts, targets)

    # -- failures ------------------------------------------------------------
    def _write_errors(self, client: Any, target: Target,
                      image_id: str) -> ContextManager[None]:
        return targets_mod.write_errors(client, target, image_id,
                                        self.settings.stall_timeout)

    def refuse_if_full(self, pool: str, image_id: str) -> None:
        """Raise CephPoolFull now if ``pool`` is flagged full.

        Called before anything is created: creating an RBD image is a write,
        and on a full pool an ordinary connection waits for ever on it.
        """
        targets_mod.refuse_if_full(self._connect, pool, image_id)

    def remove_targets(self, targets: Sequence[Target]) -> None:
        """Remove every target (absent ones are skipped)."""
        targets_mod.remove(self._connect, targets)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
