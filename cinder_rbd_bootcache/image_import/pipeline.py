"""Glance image -> RBD image, in one pass, verified, with no partial result.

Three ways in, chosen by the image's ``disk_format`` and where it is:

* **raw** is streamed: chunks from the image service are cut into
  RBD-object sized blocks (``blocks``), checked against Glance's hash
  (``verify``), and written with bounded aio (``rbd_writer``); zero runs
  stay holes; nothing touches local disk.  The first block is shown to
  ``format_inspector`` before anything is written.
* **qcow2, vmdk, vhd, vhdx, vdi in Glance's rbd store** of this cluster
  (a location ``glance.rbd_store.CloneRules.import_source`` accepts) are
  converted by qemu-img straight from the store's snapshot (``rbd:``
  source, read-only, the backend's Ceph user): no download, no local
  file.  A snapshot that cannot be opened is downloaded instead.
* **the same formats over HTTP** need qemu-img, which needs random
  access: the download is streamed, hash-checked, into a temporary RBD
  image (``staging``, ``bootcache_import_staging = rbd``) or into a file
  in ``image_conversion_dir`` (``local``), and converted from there.

Whatever qemu-img reads (``sources``), its header goes through
``glance.formats`` first, the same checks for a file, a staging image and
a store snapshot: the format matches ``disk_format``; no backing file,
external data file, extents in other files, or LUKS; a virtual size that
fits the volume.  qemu-img converts straight into the RBD images
(``qemu``: ``rbd:`` target, ``--target-is-zero``: sparse), never into a
second raw file.

The hash check is ours (``verify.ChecksumVerifier``): Cinder's Glance
client is asked for the data without its own check (``do_checksum=False``,
see ``glance.download``).  Only an image service reached through its
``download`` alone, whose client checks the hash itself, is left to that
check.  The byte count is always ours.  A store snapshot is not hashed:
its bytes come from Glance's own store in this cluster, the trust
upstream's clone of a raw image from the same store already gives; its
header is checked as any other.

Either way a target is an RBD image that already exists, all zeros and as
large as the volume (``targets``).  One pass can fill several targets (a
boot-cache entry and the volume that asked for it): the image is
downloaded, checked and hashed once, and each block is written to every
target, so the volume needs no snapshot of the entry before it can be
handed out.  The contract: when ``import_image`` raises, every target and
any staging image has been removed (also from a full pool), and the
exception is a Cinder error from ``errors`` that names the image and says
what to do.

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
from typing import Union

# image_utils before anything that imports cinder.image.glance: the two
# import each other, and only this order completes.
from cinder.image import image_utils  # noqa: I100
from oslo_log import log as logging
from oslo_utils import excutils

from cinder_rbd_bootcache.ceph import api as ceph
from cinder_rbd_bootcache.glance import download as image_download
from cinder_rbd_bootcache.glance.facts import ImageFacts
from cinder_rbd_bootcache.glance import formats as image_format
from cinder_rbd_bootcache.glance import rbd_store
from cinder_rbd_bootcache.image_import import blocks
from cinder_rbd_bootcache.image_import import progress as progress_mod
from cinder_rbd_bootcache.image_import import qemu
from cinder_rbd_bootcache.image_import import rbd_writer
from cinder_rbd_bootcache.image_import.settings import Settings
from cinder_rbd_bootcache.image_import import sources
from cinder_rbd_bootcache.image_import import staging
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
    #: 'stream' (raw), 'convert' (downloaded and converted) or 'store'
    #: (converted from Glance's rbd store, no download).
    method: str
    bytes_received: int
    bytes_written: Optional[int]
    seconds: float
    #: Fills the ``later`` targets of ``import_image`` when they were not
    #: filled yet (a converted image), then removes what the conversion
    #: read from (a staged download); the caller must call it once.
    fill_later: Optional[Callable[[], None]] = None


class ImagePipeline:
    """Imports images into RBD images of one backend."""

    def __init__(self, settings: Settings, connect: Connect,
                 execute: Optional[Callable[..., Any]] = None,
                 on_progress: Optional[Callable] = None,
                 store_rules: Optional[rbd_store.CloneRules] = None
                 ) -> None:
        self.settings = settings
        self._connect = connect
        self._on_progress = on_progress
        #: Which Glance rbd-store snapshots qemu-img may read; None: none.
        self._store_rules = store_rules
        self._converter = qemu.Converter(settings, connect, execute,
                                         on_progress)

    @classmethod
    def from_configuration(cls, configuration: Any, connect: Connect,
                           on_progress: Optional[Callable] = None,
                           store_rules: Optional[rbd_store.CloneRules]
                           = None) -> 'ImagePipeline':
        """The pipeline of the backend whose options are ``configuration``
        (its cinder.conf section: ``rbd_*``, ``bootcache_*``); the
        driver's and the CLI's.  ``on_progress`` gets every progress
        update (the CLI's progress bar); ``store_rules`` (the driver's
        ``_clone_rules``) let it convert images of Glance's rbd store
        from their snapshot."""
        return cls(Settings.from_configuration(configuration), connect,
                   on_progress=on_progress, store_rules=store_rules)

    def import_image(self, context: Any, image_service: Any,
                     facts: ImageFacts, targets: Sequence[Target],
                     local_path: Optional[str] = None,
                     later: Sequence[Target] = (),
                     staging_place: Optional[staging.Place] = None
                     ) -> Report:
        """Fill every target with the image; on failure remove them all.

        ``local_path`` is a copy of the image already on local disk (the
        flow's TemporaryImages); without it, a non-raw image is read from
        Glance's rbd store when it is there, else the image service is
        asked.  ``later`` are targets the caller does not wait for: a
        stream fills them in the same pass (it is read once), a converted
        image is converted into ``targets`` now and into ``later`` by
        ``Report.fill_later``, which keeps a staged download until then
        and removes ``later`` if that conversion fails.
        ``staging_place`` is where a download is staged in RBD (a
        population's, recorded in the cache's index); by default an
        unrecorded one in the first target's pool.
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
            pools = {t.pool for t in targets + later}
            if staging_place is not None:
                pools.add(staging_place.pool)
            for pool in sorted(pools):
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
                method, fill_later = self._convert_non_raw(
                    context, image_service, facts, targets, later,
                    tracker, staging_place)
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

    # -- other formats: qemu-img from the store or a staged download ------
    def _convert_non_raw(self, context: Any, image_service: Any,
                         facts: ImageFacts, targets: Sequence[Target],
                         later: Sequence[Target], tracker: Any,
                         place: Optional[staging.Place]
                         ) -> tuple[str, Optional[Callable[[], None]]]:
        """(method, fill_later) of a qcow2, vmdk... not on local disk."""
        source = self._store_source(context, image_service, facts)
        if source is not None:
            try:
                return 'store', self._convert_now_and_later(
                    source, facts, targets, later)
            except sources.Unreadable as exc:
                # Nothing was written: the checks come first.
                LOG.warning('Image %(image)s: cannot read %(source)s '
                            '(%(why)s); downloading it instead.',
                            {'image': facts.id, 'source': source,
                             'why': exc})
        if self.settings.staging == 'local' or not facts.size:
            return 'convert', self._stage_locally(
                context, image_service, facts, targets, later, tracker)
        place = place or staging.Place.unrecorded(targets[0].pool,
                                                  facts.id)
        download = image_download.open_stream(context, image_service,
                                              facts.id)
        staging.stage(self._connect, self.settings, place, facts,
                      download.chunks, download.hashing, tracker)
        source = sources.rbd_image(self._connect, self.settings,
                                   place.pool, place.name,
                                   facts.disk_format, facts.id)
        return 'convert', self._convert_now_and_later(
            source, facts, targets, later,
            cleanup=lambda: staging.remove(self._connect, place))

    def _store_source(self, context: Any, image_service: Any,
                      facts: ImageFacts) -> Optional[sources.Source]:
        """The image's snapshot in Glance's rbd store of this cluster, if
        the store rules accept one of its locations; else None."""
        if self._store_rules is None or \
                not hasattr(image_service, 'get_location'):
            return None
        try:
            location = self._store_rules.import_source(
                image_service.get_location(context, facts.id),
                {'id': facts.id, 'disk_format': facts.disk_format})
        except Exception as exc:
            # Glance's location API needs the service role since 2024.2;
            # without it (or with an answer we cannot read) the image is
            # downloaded, as it was before the store was read.
            LOG.info('Image %(image)s: its locations cannot be read '
                     '(%(why)s); downloading it.',
                     {'image': facts.id, 'why': exc})
            return None
        if location is None:
            return None
        LOG.info('Converting image %(image)s from Glance\'s rbd store '
                 '(%(url)s), with no download.',
                 {'image': facts.id, 'url': location.url})
        return sources.rbd_image(
            self._connect, self.settings, location.pool, location.image,
            facts.disk_format, facts.id, snapshot=location.snapshot,
            binding=self._store_rules.binding)

    def _stage_locally(self, context: Any, image_service: Any,
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
            except BaseException:
                with excutils.save_and_reraise_exception():
                    _unlink(path)
        return self._convert_now_and_later(
            sources.local_file(path, facts.disk_format, image_id), facts,
            targets, later, cleanup=lambda: _unlink(path))

    def _convert_now_and_later(self, source: sources.Source,
                               facts: ImageFacts, targets: Sequence[Target],
                               later: Sequence[Target],
                               cleanup: Callable[[], None] = lambda: None
                               ) -> Optional[Callable[[], None]]:
        """Convert ``source`` into ``targets``; the ``fill_later`` that
        converts it into ``later`` (None when there are none).
        ``cleanup`` (removing a staged download) runs once the last
        conversion ended, or failed."""
        try:
            self._convert(source, facts, targets)
        except BaseException:
            with excutils.save_and_reraise_exception():
                cleanup()
        if not later:
            cleanup()
            return None

        def fill_later() -> None:
            try:
                self._convert(source, facts, later)
            except Exception:
                with excutils.save_and_reraise_exception():
                    self.remove_targets(later)
            finally:
                cleanup()
        return fill_later

    def _verify_file(self, path: str, facts: ImageFacts, tracker: Any) -> None:
        verifier = verify.ChecksumVerifier(facts)
        for chunk in blocks.file_blocks(path):
            verifier.update(chunk)
            tracker.advance(len(chunk))
        verifier.finish()

    def _convert(self, source: Union[str, sources.Source],
                 facts: ImageFacts, targets: Sequence[Target]) -> None:
        self._converter.convert(source, facts, targets)

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
